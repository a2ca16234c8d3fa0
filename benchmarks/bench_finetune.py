"""CPU benchmark of the soft-label fine-tuning with the embedded all-MiniLM-L6-v2.

One fine-tune on the 341 items (``NLI_explanations.json``, target = "chaos probs") for one epoch (or
``--steps``) with dev evaluation every 20 steps, then evaluation of the final model on ChaosNLI dev,
test and ANLI R1-R3, through `hlv_assets.lib.finetune.run_finetune`. Afterwards, in the same process, the
final model predicts dev once with length-sorted batches and once unsorted (the baseline), to give the
speed-up of sorting. Then our training loop against the Hugging Face `Trainer` on the same batches
(`trainer_ratio.py`: same initial weights, batch order, loss, optimizer and schedule; ``--trainer-steps``,
default 43 = half an epoch, each side). Prints one JSON report and an extrapolation of the 2-epoch demo's
wall time against a 4-minute budget.

    .venv/bin/python benchmarks/bench_finetune.py [--steps N] [--data DIR] [--json OUT.json]
    .venv/bin/python benchmarks/bench_finetune.py --quick   # only the Trainer ratio, 10 steps each side
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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # trainer_ratio
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DEV = "mjd_estimator/MJD-fine-tuning/data/chaos_dev_test/dev.json"
TEST = "mjd_estimator/MJD-fine-tuning/data/chaos_dev_test/test.json"
TRAIN = "mjd_estimator/MJD-generator/NLI_explanations.json"


def _cpu_seconds() -> float:
    """User + system CPU time of this process (on a shared machine: wall time / this = contention)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def trainer_comparison(data: Path, steps: int, repeats: int) -> dict:
    """Our loop vs the Hugging Face Trainer on MiniLM, the 341 items, the same batches (CPU)."""
    from trainer_ratio import loop_vs_trainer

    from hlv_assets.lib.finetune import FinetuneConfig, read_nli_explanations
    from hlv_assets.lib.finetune.runs import build_model

    items = read_nli_explanations(data / TRAIN)

    def build():
        model, tok, _ = build_model(FinetuneConfig(train_path="<in memory>", encoder="minilm", seed=42))
        return model, tok

    return loop_vs_trainer(build, items, steps=steps, repeats=repeats)


def main() -> int:
    started = time.perf_counter()
    load_start = os.getloadavg()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", default=os.environ.get("HLV_DATA_DIR", str(REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--steps", type=int, default=None, help="max steps (default: one epoch = 86 steps)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--budget-s", type=float, default=240.0, help="wall-time budget of the demo")
    parser.add_argument("--demo-epochs", type=int, default=2)
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--trainer-steps", type=int, default=43, help="steps per side of the Trainer ratio")
    parser.add_argument("--trainer-repeats", type=int, default=1, help="alternating repeats (best of)")
    parser.add_argument("--quick", action="store_true", help="only the Trainer ratio, 10 steps each side")
    args = parser.parse_args()
    if args.quick:
        ratio = trainer_comparison(Path(args.data), 10, 1)
        text = json.dumps({"loop_vs_trainer": ratio, "wall_seconds_total": time.perf_counter() - started},
                          indent=2)
        print(text)
        if args.json:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
        return 0

    import torch
    from transformers.utils import logging as hf_logging

    from hlv_assets.lib.evaluation import predict_logits
    from hlv_assets.lib.finetune import (
        FinetuneConfig,
        read_nli_explanations,
        read_soft_items,
        run_finetune,
        write_jsonl,
    )

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    data = Path(args.data)
    imports_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="bench_ft_") as tmp:
        train_path = write_jsonl(read_nli_explanations(data / TRAIN), Path(tmp) / "train.jsonl")
        config = FinetuneConfig(
            train_path=str(train_path),
            dev_path=str(data / DEV),
            test_path=str(data / TEST),
            anli_paths={f"R{r}": str(data / f"anli/anli_v1.0/R{r}/test.jsonl") for r in (1, 2, 3)},
            encoder="minilm",
            epochs=args.epochs,
            max_steps=args.steps,
            device="cpu",
            run_name="bench_finetune",
        )
        captured: dict = {}

        def reporter(event: dict) -> None:
            if event["event"] == "eval":
                print(
                    f"  step {event['step']}/{event['total_steps']} dev macro-F1 {event['dev_macro_f1']:.3f}",
                    flush=True,
                )

        t0 = time.perf_counter()
        metrics = run_finetune(config, Path(tmp) / "out", reporter=reporter)
        run_s = time.perf_counter() - t0

        # length-sorted vs unsorted evaluation (same model, same data, same process)
        from transformers import AutoTokenizer, BertForSequenceClassification

        model = BertForSequenceClassification.from_pretrained(Path(tmp) / "out" / "checkpoint").eval()
        tok = AutoTokenizer.from_pretrained(Path(tmp) / "out" / "checkpoint")
        dev = read_soft_items(data / DEV)
        prem, hyp = [d["premise"] for d in dev], [d["hypothesis"] for d in dev]
        for sort in (True, False):
            stats: dict = {}
            predict_logits(
                model, tok, prem, hyp, batch_size=config.eval_batch_size, sort_by_length=sort, stats=stats
            )
            captured["sorted" if sort else "unsorted"] = stats["samples_per_s"]

    th = metrics["throughput"]
    steps = metrics["total_steps"]
    train_sps, eval_sps = th["train_samples_per_s"], th["eval_samples_per_s"]
    n_train, n_dev, n_test = metrics["n_train"], metrics["dev"]["n"], metrics["test"]["n"]
    n_anli = sum(m["n"] for m in metrics["anli"].values())
    overhead_s = (
        run_s - th["train_seconds"] - th["eval_seconds"]
    )  # model load, tokenisation, checkpoint write
    demo_steps = args.demo_epochs * math.ceil(n_train / config.batch_size)
    demo_dev_evals = demo_steps // config.eval_every + (1 if demo_steps % config.eval_every else 0)
    demo_train_s = demo_steps * config.batch_size / train_sps
    demo_eval_s = (demo_dev_evals * n_dev + n_test + n_anli) / eval_sps
    demo_total = imports_s + overhead_s + demo_train_s + demo_eval_s
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "run": {
            "steps": steps,
            "selection": metrics["selection"],
            "selected_step": metrics["selected_step"],
            "n_train": n_train,
            "dev_evaluations": len(metrics["training_curve"]),
            "dev": {k: metrics["dev"][k] for k in ("macro_f1", "weighted_f1", "kl_published", "ce_loss")},
            "test": {k: metrics["test"][k] for k in ("macro_f1", "weighted_f1", "kl_published", "ce_loss")},
            "anli_weighted_f1": {k: m["weighted_f1"] for k, m in metrics["anli"].items()},
        },
        "train_samples_per_s": train_sps,
        "eval_samples_per_s": eval_sps,
        "train_seconds": th["train_seconds"],
        "eval_seconds": th["eval_seconds"],
        "eval_items": th["eval_items"],
        "overhead_seconds": overhead_s,
        "imports_seconds": imports_s,
        "peak_rss_mb": metrics["memory"]["peak_rss_mb"],
        "cpu_seconds": _cpu_seconds(),
        "load_average_start_end": [load_start[0], os.getloadavg()[0]],
        "loop_vs_trainer": trainer_comparison(data, args.trainer_steps, args.trainer_repeats),
        "wall_seconds_total": time.perf_counter() - started,
        "eval_sorted_vs_unsorted": {
            "sorted_samples_per_s": captured["sorted"],
            "unsorted_samples_per_s": captured["unsorted"],
            "speedup": captured["sorted"] / captured["unsorted"],
        },
        "extrapolation": {
            "note": "from this run's measured rates (same machine load); the wall time scales with contention",
            "demo_epochs": args.demo_epochs,
            "demo_steps": demo_steps,
            "demo_dev_evaluations": demo_dev_evals,
            "train_seconds": demo_train_s,
            "eval_seconds": demo_eval_s,
            "total_seconds": demo_total,
            "budget_seconds": args.budget_s,
            "fits": demo_total <= args.budget_s,
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
