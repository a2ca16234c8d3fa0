"""Whole runs: `run_finetune` (read, build, train, select, evaluate, write checkpoint and outputs) and
`run_zero_shot` (evaluate the encoder as built), and `summary`, the flat scalars of a run's metrics."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hlv_assets.lib.encoders import build_classifier
from hlv_assets.lib.finetune.checkpoint import save_checkpoint
from hlv_assets.lib.finetune.config import FinetuneConfig, Reporter
from hlv_assets.lib.finetune.evaluate import EvalClock, data_hashes, evaluate_model, load_eval_sets
from hlv_assets.lib.finetune.files import atomic_write_text, read_soft_items
from hlv_assets.lib.finetune.runtime import library_versions, peak_memory, set_seed, setup_device
from hlv_assets.lib.finetune.training import TrainResult, train
from hlv_assets.lib.nli import WORDS


def build_model(config: FinetuneConfig) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, encoder info) as the config describes, after seeding (the head's initialisation)."""
    set_seed(config.seed)
    return build_classifier(
        config.encoder,
        head=config.head,
        random_init=config.random_init,
        tokenizer=config.tokenizer,
        local_files_only=config.local_files_only,
        labels=config.head_labels,
        labels_setting=config.head_labels_setting,
    )


def precision_of(bf16: bool) -> str:
    """The arithmetic a run used: `bf16` (autocast, asked for and available) or `fp32`."""
    return "bf16" if bf16 else "fp32"


def _write_outputs(out_dir: Path | None, metrics: dict[str, Any], predictions: dict[str, Any]) -> None:
    if out_dir is None:
        return
    atomic_write_text(out_dir / "predictions.json", json.dumps(predictions) + "\n")
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")


def _throughput(result: TrainResult, clock: EvalClock, final_clock: EvalClock, during: tuple[float, int]
                ) -> dict[str, Any]:
    return {
        "train_samples_per_s": result.train_samples / result.train_seconds if result.train_seconds else None,
        "train_seconds": result.train_seconds,
        "train_samples": result.train_samples,
        "eval_samples_per_s": clock.samples_per_s(),
        "eval_seconds": clock.seconds,
        "eval_items": clock.items,
        "eval_seconds_during_training": during[0],
        "eval_items_during_training": during[1],
        "final_eval_samples_per_s": final_clock.samples_per_s(),
    }


def _checkpoint(model: Any, tokenizer: Any, out: Path, config: FinetuneConfig, result: TrainResult,
                n_train: int, hashes: dict[str, str], info: dict[str, Any], versions: dict[str, str],
                precision: str) -> dict[str, Any]:
    manifest = {
        "train_data_sha256": hashes["train"],
        "train_path": str(config.train_path),
        "n_train": n_train,
        "selection": config.selection,
        "selected_step": result.selected_step,
        "total_steps": result.total_steps,
        "seed": config.seed,
        "precision": precision,
        "label_order": list(WORDS),
        "encoder": info,
        "config": config.to_dict(),
        "versions": versions,
    }
    ckpt = save_checkpoint(model, tokenizer, out / "checkpoint", manifest)
    return {"path": str(out / "checkpoint"), "model_sha256": ckpt["model_sha256"]}


def run_finetune(
    config: FinetuneConfig | Mapping[str, Any],
    out_dir: str | os.PathLike[str] | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Fine-tune, keep the weights ``config.selection`` names (default the final step's), evaluate them; write
    outputs into ``out_dir``.

    Returns the metrics dict (also written to ``out_dir/metrics.json``). With ``mode="zero_shot"``
    this is `run_zero_shot`. ``reporter`` receives progress events (dicts with an ``event`` key).
    """
    if not isinstance(config, FinetuneConfig):
        config = FinetuneConfig.from_dict(config)
    if config.mode == "zero_shot":
        return run_zero_shot(config, out_dir, reporter)
    started = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    device, bf16 = setup_device(config)
    train_items = read_soft_items(config.train_path)
    sets = load_eval_sets(config)
    hashes = data_hashes(config)
    model, tokenizer, info = build_model(config)
    model.to(device)
    if reporter:
        reporter({"event": "start", "mode": "finetune", "n_train": len(train_items), "device": str(device),
                  "bf16": bf16})
    clock = EvalClock()
    result = train(model, tokenizer, train_items, sets.dev, config, device, bf16, clock, reporter)
    during = (clock.seconds, clock.items)
    final_clock = EvalClock()
    metrics, predictions = evaluate_model(
        model, tokenizer, sets, config, device, bf16, final_clock, dev_logits=result.selected_dev_logits
    )
    clock.seconds += final_clock.seconds
    clock.items += final_clock.items
    metrics.update({
        "mode": "finetune",
        "run_name": config.run_name,
        "selection": config.selection,
        "selected_step": result.selected_step,
        "total_steps": result.total_steps,
        "seed": config.seed,
        "precision": precision_of(bf16),
        "n_train": len(train_items),
        "training_curve": result.curve,
        "train_loss": result.losses,
        "throughput": _throughput(result, clock, final_clock, during),
        "device": str(device),
        "bf16": bf16,
        "encoder": info,
        "data_sha256": hashes,
        "versions": library_versions(),
        "config": config.to_dict(),
    })
    if out is not None and config.save_checkpoint:
        metrics["checkpoint"] = _checkpoint(model, tokenizer, out, config, result, len(train_items), hashes, info,
                                            metrics["versions"], metrics["precision"])
    metrics["memory"] = peak_memory(device)
    metrics["wall_seconds"] = time.perf_counter() - started
    _write_outputs(out, metrics, predictions)
    if reporter:
        reporter({"event": "done", **summary(metrics)})
    return metrics


def run_zero_shot(
    config: FinetuneConfig | Mapping[str, Any],
    out_dir: str | os.PathLike[str] | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Evaluate the encoder as built (no training): untrained fresh head, or a kept MNLI head."""
    if not isinstance(config, FinetuneConfig):
        config = FinetuneConfig.from_dict(config)
    started = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else None
    device, bf16 = setup_device(config)
    sets = load_eval_sets(config)
    model, tokenizer, info = build_model(config)
    model.to(device).eval()
    if reporter:
        reporter({"event": "start", "mode": "zero_shot", "device": str(device), "bf16": bf16})
    clock = EvalClock()
    metrics, predictions = evaluate_model(model, tokenizer, sets, config, device, bf16, clock)
    metrics.update(
        {
            "mode": "zero_shot",
            "run_name": config.run_name,
            "selection": "none",
            "throughput": {
                "eval_samples_per_s": clock.samples_per_s(),
                "eval_seconds": clock.seconds,
                "eval_items": clock.items,
            },
            "device": str(device),
            "bf16": bf16,
            "seed": config.seed,
            "precision": precision_of(bf16),
            "encoder": info,
            "data_sha256": data_hashes(config),
            "versions": library_versions(),
            "config": config.to_dict(),
            "memory": peak_memory(device),
            "wall_seconds": time.perf_counter() - started,
        }
    )
    _write_outputs(out, metrics, predictions)
    if reporter:
        reporter({"event": "done", **summary(metrics)})
    return metrics


def summary(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Flat scalars of a metrics dict (for logs and Dagster metadata)."""
    flat: dict[str, Any] = {"mode": metrics.get("mode")}
    for key in ("selection", "seed", "precision"):
        if key in metrics:
            flat[key] = metrics[key]
    for split in ("dev", "test"):
        for key in ("kl_published", "kl_per_item", "ce_loss", "weighted_f1", "macro_f1", "accuracy", "jsd",
                    "majority_accuracy"):
            if split in metrics and key in metrics[split]:
                flat[f"{split}_{key}"] = metrics[split][key]
    for name, m in metrics.get("anli", {}).items():
        flat[f"anli_{name}_weighted_f1"] = m["weighted_f1"]
        flat[f"anli_{name}_accuracy"] = m["accuracy"]
    for key in ("selected_step", "total_steps", "wall_seconds"):
        if key in metrics:
            flat[key] = metrics[key]
    for key, value in metrics.get("throughput", {}).items():
        if key.endswith("samples_per_s"):
            flat[key] = value
    flat.update(metrics.get("memory", {}))
    if "checkpoint" in metrics:
        flat["model_sha256"] = metrics["checkpoint"]["model_sha256"]
    return flat
