"""GPU throughput of the soft-label fine-tuning: a BERT-base-shaped model on CUDA, fp32 (the default) and bf16.

Self-contained: needs torch, transformers (with tokenizers) and numpy, no network and no data pack. It
builds a synthetic word-level tokenizer (WordLevel, BERT-style pair template, 30,522 words) and synthetic
NLI items (random words, Dirichlet soft targets), then runs the real entry point
`hlv_assets.lib.finetune.run_finetune` with a randomly initialised BERT-base (12 × 768) for ``--steps``
steps (default 200) at each batch size in ``--batch-sizes`` (default: the recipe's 4, and 32) and each
precision in ``--precisions`` (default fp32,bf16), dev evaluation every ``--eval-every`` steps, then test
evaluation and the safetensors checkpoint write. Then, per precision, our loop against the Hugging Face
`Trainer` on the same batches at batch size 4 (`trainer_ratio.py`, ``--trainer-steps`` each side, default
100; ``--trainer-steps 0`` skips it). The loop reads the loss from the GPU only at log / evaluation points
(no per-step host sync). Prints one JSON line per run and a final JSON summary (samples/s of training and
evaluation, peak GPU memory, the ratios). Meant to finish well under 3 minutes on one H200.

    python benchmarks/gpu_finetune.py                 # CUDA, fp32 and bf16
    python benchmarks/gpu_finetune.py --tiny          # CPU smoke test: tiny BERT, a few steps
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # trainer_ratio
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

BERT_BASE = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def synthetic_tokenizer(folder: Path, vocab_size: int) -> Path:
    """A word-level BERT-style tokenizer (words ``w0``...) saved with ``save_pretrained``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    vocab.update({f"w{i}": len(SPECIALS) + i for i in range(vocab_size - len(SPECIALS))})
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    tok.save_pretrained(str(folder))
    return folder


def synthetic_items(n: int, vocab_size: int, seed: int, premise_words=(12, 40), hypothesis_words=(5, 16)):
    import numpy as np

    rng = np.random.default_rng(seed)
    words = vocab_size - len(SPECIALS)
    items = []
    for i in range(n):
        lp, lh = rng.integers(*premise_words), rng.integers(*hypothesis_words)
        items.append(
            {
                "uid": f"syn{i}",
                "premise": " ".join(f"w{w}" for w in rng.integers(0, words, lp)),
                "hypothesis": " ".join(f"w{w}" for w in rng.integers(0, words, lh)),
                "target": [float(p) for p in rng.dirichlet([1.0, 1.0, 1.0])],
            }
        )
    return items


def trainer_ratio(tok_dir: Path, vocab_size: int, tiny: bool, device: str, bf16: bool, steps: int) -> dict:
    """Our loop vs the HF Trainer at batch size 4 on the same synthetic items and batches."""
    import torch
    from trainer_ratio import loop_vs_trainer

    from hlv_assets.lib.finetune import FinetuneConfig
    from hlv_assets.lib.finetune.runs import build_model

    config = FinetuneConfig(train_path="<in memory>", encoder=str(tok_dir), tokenizer=str(tok_dir), seed=42,
                            random_init=dict(TINY if tiny else BERT_BASE, vocab_size=vocab_size))

    def build():
        model, tok, _ = build_model(config)
        return model, tok

    items = synthetic_items(steps * 4, vocab_size, seed=7)
    return loop_vs_trainer(build, items, steps=steps, device=torch.device(device), bf16=bf16)


def main() -> int:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="CPU smoke test: tiny BERT, few steps")
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps per run (default 200; tiny 6)"
    )
    parser.add_argument("--batch-sizes", default=None, help="comma-separated (default 4,32; tiny 4)")
    parser.add_argument("--eval-every", type=int, default=None, help="default 100 (tiny 3)")
    parser.add_argument("--n-dev", type=int, default=None, help="dev/test items (default 1024; tiny 16)")
    parser.add_argument("--eval-batch-size", type=int, default=128)
    parser.add_argument("--device", default=None, help="default cuda (tiny: cpu)")
    parser.add_argument("--precisions", default=None, help="comma-separated fp32,bf16 (default both; tiny fp32)")
    parser.add_argument("--trainer-steps", type=int, default=None, help="Trainer ratio steps (default 100; tiny 4)")
    parser.add_argument("--no-save", action="store_true", help="skip the checkpoint write")
    args = parser.parse_args()

    import torch
    from transformers.utils import logging as hf_logging

    from hlv_assets.lib.finetune import FinetuneConfig, run_finetune, write_jsonl

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tiny = args.tiny
    device = args.device or ("cpu" if tiny else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(json.dumps({"error": "CUDA is not available; use --tiny (CPU) or --device cpu"}), flush=True)
        return 2
    steps = args.steps or (6 if tiny else 200)
    batch_sizes = [int(b) for b in (args.batch_sizes or ("4" if tiny else "4,32")).split(",")]
    eval_every = args.eval_every or (3 if tiny else 100)
    precisions = (args.precisions or ("fp32" if tiny else "fp32,bf16")).split(",")
    trainer_steps = args.trainer_steps if args.trainer_steps is not None else (4 if tiny else 100)
    n_dev = args.n_dev or (16 if tiny else 1024)
    vocab_size = 30522
    runs = []
    with tempfile.TemporaryDirectory(prefix="gpu_ft_") as tmp_name:
        tmp = Path(tmp_name)
        tok_dir = synthetic_tokenizer(tmp / "tokenizer", vocab_size)
        dev_path = write_jsonl(synthetic_items(n_dev, vocab_size, seed=1), tmp / "dev.jsonl")
        test_path = write_jsonl(synthetic_items(n_dev, vocab_size, seed=2), tmp / "test.jsonl")
        for bs, precision in [(b, p) for p in precisions for b in batch_sizes]:
            train_path = write_jsonl(
                synthetic_items(steps * bs, vocab_size, seed=bs), tmp / f"train{bs}.jsonl"
            )
            config = FinetuneConfig(
                train_path=str(train_path),
                dev_path=str(dev_path),
                test_path=str(test_path),
                encoder=str(tok_dir),
                tokenizer=str(tok_dir),
                random_init=dict(TINY if tiny else BERT_BASE, vocab_size=vocab_size),
                batch_size=bs,
                max_steps=steps,
                eval_every=eval_every,
                eval_batch_size=args.eval_batch_size,
                device=device,
                bf16=precision == "bf16",
                save_checkpoint=not args.no_save,
                run_name=f"gpu_finetune_bs{bs}_{precision}",
            )
            t0 = time.perf_counter()
            metrics = run_finetune(config, tmp / f"out{bs}")
            th = metrics["throughput"]
            run = {
                "batch_size": bs,
                "steps": metrics["total_steps"],
                "device": metrics["device"],
                "precision": metrics["precision"],
                "train_samples_per_s": th["train_samples_per_s"],
                "train_steps_per_s": metrics["total_steps"] / th["train_seconds"],
                "eval_samples_per_s": th["eval_samples_per_s"],
                "train_seconds": th["train_seconds"],
                "eval_seconds": th["eval_seconds"],
                "eval_items": th["eval_items"],
                "run_seconds": time.perf_counter() - t0,
                "final_train_loss": metrics["train_loss"][-1],
                **{k: v for k, v in metrics["memory"].items()},
            }
            runs.append(run)
            print(json.dumps(run), flush=True)
        ratios = [trainer_ratio(tok_dir, vocab_size, tiny, device, precision == "bf16", trainer_steps)
                  for precision in precisions] if trainer_steps else []
        for ratio in ratios:
            print(json.dumps({"loop_vs_trainer": ratio}), flush=True)
    summary = {
        "benchmark": "gpu_finetune",
        "model": "tiny-bert" if tiny else "bert-base (random init, 12x768)",
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "runs": runs,
        "loop_vs_trainer": [{k: r[k] for k in ("bf16", "steps", "ratio_ours_over_trainer")} |
                            {"ours_samples_per_s": r["ours"]["samples_per_s"],
                             "trainer_samples_per_s": r["trainer"]["samples_per_s"]} for r in ratios],
        "wall_seconds": time.perf_counter() - started,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
