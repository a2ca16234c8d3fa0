"""Evaluation of a model on every set of a run: the dev / test ChaosNLI metrics (soft targets) and the ANLI
rounds (gold labels), with per-item predicted probabilities and the time spent predicting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hlv_assets.lib.evaluation import anli_metrics, chaosnli_metrics, predict_logits, softmax
from hlv_assets.lib.finetune.config import FinetuneConfig
from hlv_assets.lib.finetune.files import read_anli, read_soft_items, sha256_file
from hlv_assets.lib.nli import WORDS


@dataclass
class EvalSets:
    dev: list[dict[str, Any]] | None
    test: list[dict[str, Any]] | None
    anli: dict[str, list[dict[str, Any]]]


def load_eval_sets(config: FinetuneConfig) -> EvalSets:
    return EvalSets(
        dev=read_soft_items(config.dev_path) if config.dev_path else None,
        test=read_soft_items(config.test_path) if config.test_path else None,
        anli={name: read_anli(path) for name, path in config.anli_paths.items()},
    )


def data_hashes(config: FinetuneConfig) -> dict[str, str]:
    paths = {"train": config.train_path, "dev": config.dev_path, "test": config.test_path}
    paths.update({f"anli_{k}": v for k, v in config.anli_paths.items()})
    return {k: sha256_file(v) for k, v in paths.items() if v}


class EvalClock:
    """Seconds and items spent predicting (the eval samples/s of a run)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.items = 0

    def add(self, stats: Mapping[str, Any]) -> None:
        self.seconds += float(stats["seconds"])
        self.items += int(stats["n"])

    def samples_per_s(self) -> float | None:
        return self.items / self.seconds if self.seconds > 0 else None


def predict(
    model: Any,
    tokenizer: Any,
    items: Sequence[Mapping[str, Any]],
    config: FinetuneConfig,
    device: Any,
    bf16: bool,
    clock: EvalClock,
) -> np.ndarray:
    stats: dict[str, Any] = {}
    logits = predict_logits(
        model,
        tokenizer,
        [it["premise"] for it in items],
        [it["hypothesis"] for it in items],
        batch_size=config.eval_batch_size,
        max_length=config.max_length,
        device=device,
        sort_by_length=config.sort_eval_by_length,
        bf16=bf16,
        stats=stats,
    )
    clock.add(stats)
    return logits


def soft_metrics(items: Sequence[Mapping[str, Any]], logits: np.ndarray) -> dict[str, Any]:
    """ChaosNLI metrics; `majority_accuracy` too when every item carries its ChaosNLI majority label."""
    majority = [it.get("majority") for it in items]
    return chaosnli_metrics(logits, np.asarray([it["target"] for it in items]),
                            majority=None if None in majority else majority)


def _prediction_rows(items: Sequence[Mapping[str, Any]], logits: np.ndarray) -> list[dict[str, Any]]:
    probs = softmax(logits)
    rows = []
    for i, (item, p) in enumerate(zip(items, probs, strict=True)):
        row: dict[str, Any] = {"index": i}
        if "uid" in item:
            row["uid"] = item["uid"]
        row["probs"] = [float(v) for v in p]
        rows.append(row)
    return rows


def evaluate_model(
    model: Any,
    tokenizer: Any,
    sets: EvalSets,
    config: FinetuneConfig,
    device: Any,
    bf16: bool,
    clock: EvalClock,
    dev_logits: np.ndarray | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, predictions) of the model on dev, test and each ANLI round present in ``sets``."""
    metrics: dict[str, Any] = {"anli": {}}
    predictions: dict[str, Any] = {"label_order": list(WORDS), "anli": {}}
    for name, items in (("dev", sets.dev), ("test", sets.test)):
        if not items:
            continue
        logits = dev_logits if name == "dev" and dev_logits is not None else None
        if logits is None:
            logits = predict(model, tokenizer, items, config, device, bf16, clock)
        metrics[name] = soft_metrics(items, logits)
        predictions[name] = _prediction_rows(items, logits)
    for name, items in sets.anli.items():
        logits = predict(model, tokenizer, items, config, device, bf16, clock)
        metrics["anli"][name] = anli_metrics(logits, [it["label"] for it in items])
        predictions["anli"][name] = _prediction_rows(items, logits)
    return metrics, predictions
