"""What a fine-tune trains on and how its results become table rows (Dagster-free).

A fine-tune = (encoder, a distribution over the 341 items, the profile's recipe, one or more seeds). The inputs
are written as JSONL next to the checkpoint so the training entry point needs nothing but files; the rows of
`finetune_comparison` and `anli_ood` average the seeds (mean and sd) and keep each seed's checkpoint.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hlv_assets.lib.profiles import Profile

SOFT_METRICS = ("kl_published", "kl_per_item", "ce_loss", "weighted_f1", "macro_f1", "accuracy")
ANLI_METRICS = ("weighted_f1", "accuracy", "ce_loss")
TRAINING_VERSION = "finetune-v1"


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder the platform fine-tunes: `minilm` (embedded) or a user-supplied MNLI checkpoint."""

    name: str  # asset-name-safe: minilm, bert, roberta
    model: str  # local path or HF id; `minilm` = the embedded all-MiniLM-L6-v2
    family: str  # table column: MiniLM, BERT, RoBERTa
    env: str | None = None  # environment variable that supplies the MNLI-fine-tuned checkpoint


ENCODERS = (
    EncoderSpec("minilm", "minilm", "MiniLM"),
    EncoderSpec("bert", "", "BERT", env="HLV_BERT_MNLI"),
    EncoderSpec("roberta", "", "RoBERTa", env="HLV_ROBERTA_MNLI"),
)


def configured_encoders(environ: Mapping[str, str] | None = None) -> tuple[EncoderSpec, ...]:
    """The encoders that can be fine-tuned now: the embedded MiniLM always, BERT / RoBERTa once their
    MNLI-fine-tuned checkpoint is named in the environment (read when the definitions load)."""
    environ = os.environ if environ is None else environ
    return tuple(e for e in ENCODERS if e.env is None or environ.get(e.env, "").strip())


def unconfigured_message(asset: str, environ: Mapping[str, str] | None = None) -> str | None:
    """One line for an asset of an encoder that is not configured (`finetune_bert`, `finetune_bert_baseline`,
    ...), else None."""
    configured = {e.name for e in configured_encoders(environ)}
    for encoder in ENCODERS:
        names = {f"finetune_{encoder.name}{suffix}" for suffix in ("", "_baseline", "_reference")}
        if asset in names and encoder.name not in configured:
            return (f"{asset} is not configured: set {encoder.env} to an MNLI-fine-tuned {encoder.family} "
                    "checkpoint (path or HF id)")
    return None


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def _limit(frame: pd.DataFrame, n: int | None) -> pd.DataFrame:
    return frame if n is None else frame.head(n)


def write_inputs(work: Path, items: pd.DataFrame, dist: pd.DataFrame, dev: pd.DataFrame, test: pd.DataFrame,
                 anli: pd.DataFrame, profile: Profile) -> dict[str, object]:
    """Training and evaluation files for one fine-tune; returns the FinetuneConfig paths."""
    work.mkdir(parents=True, exist_ok=True)
    targets = dist.set_index("uid")[["p_e", "p_n", "p_c"]]
    train = items[items.uid.isin(targets.index)]
    missing = set(targets.index) - set(train.uid)
    if missing:
        raise KeyError(f"{len(missing)} distribution uids are not among the items: {sorted(missing)[:5]}")
    train_rows = [{"uid": r.uid, "premise": r.premise, "hypothesis": r.hypothesis,
                   "target": [float(v) for v in targets.loc[r.uid]]} for r in train.itertuples()]

    def soft(frame):
        return [{"uid": r.uid, "premise": r.premise, "hypothesis": r.hypothesis, "target": list(map(float, r.hjd))}
                for r in _limit(frame, profile.eval_items).itertuples()]

    paths: dict[str, object] = {
        "train_path": _jsonl(work / "train.jsonl", train_rows),
        "dev_path": _jsonl(work / "dev.jsonl", soft(dev)),
        "test_path": _jsonl(work / "test.jsonl", soft(test)),
        "anli_paths": {},
    }
    for round_, part in anli.groupby("round"):
        rows = [{"uid": r.uid, "premise": r.premise, "hypothesis": r.hypothesis, "label": r.label}
                for r in _limit(part, profile.eval_items).itertuples()]
        paths["anli_paths"][round_] = _jsonl(work / f"anli_{round_}.jsonl", rows)
    return paths


def recipe(profile: Profile, encoder: EncoderSpec, seed: int, *, tiny_encoder: bool) -> dict:
    """The FinetuneConfig fields of SPEC §5, shortened by the profile."""
    config = {"seed": seed, "epochs": profile.finetune_epochs, "max_steps": profile.finetune_max_steps,
              "eval_every": profile.eval_every, "encoder": encoder.model, "device": "auto"}
    if tiny_encoder:
        config["random_init"] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                 "intermediate_size": 64}
    return config


def _mean_sd(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def seed_rows(per_seed: list[dict], key: dict, *, encoder: EncoderSpec) -> tuple[dict, dict]:
    """(finetune_comparison data, anli_ood data) from each seed's metrics.json and checkpoint."""
    ft = {**key, "encoder": encoder.family, "encoder_model": encoder.model, "seeds": [m["seed"] for m in per_seed],
          "checkpoints": [m.get("checkpoint") for m in per_seed]}
    for split in ("dev", "test"):
        for metric in SOFT_METRICS:
            mean, sd = _mean_sd([m["metrics"][split][metric] for m in per_seed])
            ft[f"{split}_{metric}"] = mean
            ft[f"{split}_{metric}_sd"] = sd
    ood = {**key, "encoder": encoder.family, "encoder_model": encoder.model, "seeds": ft["seeds"]}
    rounds = sorted(per_seed[0]["metrics"].get("anli", {}))
    for round_ in rounds:
        for metric in ANLI_METRICS:
            mean, sd = _mean_sd([m["metrics"]["anli"][round_][metric] for m in per_seed])
            ood[f"{round_.lower()}_{metric}"] = mean
            ood[f"{round_.lower()}_{metric}_sd"] = sd
    return ft, ood
