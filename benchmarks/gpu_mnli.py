"""The MNLI first stage on a GPU: the authors' recipe (batch 32, lr 2e-5, 3 epochs, max length 128, best step by
MNLI-matched dev accuracy) through the platform's own stage code (`hlv_assets.lib.mnli_stage`) and training loop.

Two uses, one script:

- **the real stage** from MNLI JSONL files (GLUE/HF layout; see README "Soft-label fine-tuning"), e.g.
  ``python benchmarks/gpu_mnli.py --train mnli_train.jsonl --dev mnli_dev_matched.jsonl --encoder
  bert-base-uncased --out runs/mnli_bert`` (the base encoder: a local folder or an HF id already in the local
  cache; nothing is downloaded). The checkpoint it writes (``OUT/checkpoint``) can be given to HLV_BERT_MNLI;
- **a throughput run** without data or weights: ``--synthetic N`` builds N synthetic items and a word-level
  tokenizer and trains a randomly initialised BERT-base (``--random-init``) for ``--max-steps`` steps.

``--dry-run`` (works on CPU, no GPU needed) reads and checks the inputs, builds the training config of the loop
and prints the plan (steps, evaluations, device) as one JSON line, and trains nothing. Otherwise one JSON line per
event of the loop and a final summary (samples/s, peak GPU memory, dev accuracy, selected step).

    python benchmarks/gpu_mnli.py --synthetic 12800 --random-init --max-steps 400 --eval-every 200
    python benchmarks/gpu_mnli.py --synthetic 64 --random-init --dry-run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

BERT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
VOCAB = 30522


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", help="MNLI train JSONL (premise, hypothesis, label 0/1/2)")
    parser.add_argument("--dev", help="MNLI-matched dev JSONL")
    parser.add_argument("--synthetic", type=int, help="N synthetic training items instead of --train/--dev")
    parser.add_argument("--encoder", default="bert-base-uncased", help="base encoder (local folder or cached HF id)")
    parser.add_argument("--random-init", action="store_true", help="a randomly initialised BERT-base (no weights)")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps (default: 3 epochs)")
    parser.add_argument("--eval-every", type=int, help="default 500 (our reading of the authors' run)")
    parser.add_argument("--dev-items", type=int, help="cut dev to this many items")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (default fp32, as the authors)")
    parser.add_argument("--out", help="output folder (default: a temporary one, removed)")
    parser.add_argument("--dry-run", action="store_true", help="check inputs and print the plan; train nothing")
    return parser.parse_args(argv)


def _inputs(args, work: Path) -> tuple[Path, Path, dict]:
    """(train, dev, tokenizer fields): the user's files, or synthetic ones with a word-level tokenizer."""
    if args.synthetic:
        from gpu_finetune import synthetic_items, synthetic_tokenizer

        tok = synthetic_tokenizer(work / "tokenizer", VOCAB)
        paths = []
        for name, n, seed in (("train", args.synthetic, 1), ("dev", max(64, args.synthetic // 40), 2)):
            rows = [{"premise": r["premise"], "hypothesis": r["hypothesis"], "label": i % 3}
                    for i, r in enumerate(synthetic_items(n, VOCAB, seed))]
            path = work / f"syn_{name}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            paths.append(path)
        return paths[0], paths[1], {"encoder": str(tok), "tokenizer": str(tok)}
    if not (args.train and args.dev):
        raise SystemExit("give --train and --dev (MNLI JSONL files), or --synthetic N")
    return Path(args.train), Path(args.dev), {"encoder": args.encoder}


def _found(encoder: str) -> bool:
    """Whether the base encoder's config is readable locally (a folder, or an HF id in the local cache)."""
    from transformers import AutoConfig

    from hlv_assets.lib.encoders import EncoderError, resolve_encoder

    try:
        AutoConfig.from_pretrained(resolve_encoder(encoder), local_files_only=True)
    except (OSError, ValueError, EncoderError):
        return False
    return True


def main(argv=None) -> int:
    started = time.perf_counter()
    args = _parse(argv)
    from dataclasses import replace

    from hlv_assets.lib.finetune import FinetuneConfig, run_finetune
    from hlv_assets.lib.mnli_stage import stage_recipe, write_stage_inputs
    from hlv_assets.lib.profiles import PROFILES

    profile = replace(PROFILES["paper"], eval_items=args.dev_items)
    with tempfile.TemporaryDirectory(prefix="gpu_mnli_") as tmp_name:
        work = Path(args.out) if args.out else Path(tmp_name)
        work.mkdir(parents=True, exist_ok=True)
        train, dev, model = _inputs(args, work)
        paths = write_stage_inputs(work / "inputs", train, dev, profile)
        source = paths.pop("source_sha256")
        config = {**stage_recipe(profile, "bert"), **paths, **model, "device": args.device, "bf16": args.bf16,
                  "run_name": "gpu_mnli"}
        if args.random_init:
            config["random_init"] = dict(BERT_BASE, vocab_size=VOCAB)
        if args.max_steps:
            config["max_steps"] = args.max_steps
        if args.eval_every:
            config["eval_every"] = args.eval_every
        cfg = FinetuneConfig(**config)
        n_train = sum(1 for _ in open(cfg.train_path, encoding="utf-8"))
        steps = cfg.max_steps or cfg.epochs * math.ceil(n_train / cfg.batch_size)
        plan = {"benchmark": "gpu_mnli", "dry_run": args.dry_run, "n_train": n_train, "steps": steps,
                "evaluations": steps // cfg.eval_every if cfg.eval_every else 0, "selection": cfg.selection,
                "batch_size": cfg.batch_size, "learning_rate": cfg.learning_rate, "max_length": cfg.max_length,
                "encoder": "random BERT-base" if args.random_init else cfg.encoder, "device": cfg.device,
                "bf16": cfg.bf16, "source_sha256": source}
        if args.dry_run:
            plan["encoder_found"] = bool(cfg.random_init) or _found(cfg.encoder)
            print(json.dumps(plan), flush=True)
            return 0
        import torch

        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            print(json.dumps({"error": "CUDA is not available; use --dry-run or --device cpu"}), flush=True)
            return 2
        metrics = run_finetune(cfg, work, reporter=lambda e: print(json.dumps(e, default=str), flush=True))
        th = metrics["throughput"]
        print(json.dumps({**plan, "train_samples_per_s": th["train_samples_per_s"],
                          "eval_samples_per_s": th["eval_samples_per_s"], "dev_accuracy": metrics["dev"]["accuracy"],
                          "selected_step": metrics.get("selected_step", metrics.get("best_step")),
                          "checkpoint": (metrics.get("checkpoint") or {}).get("path") if args.out else None,
                          **metrics["memory"], "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                          else None, "wall_seconds": time.perf_counter() - started}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
