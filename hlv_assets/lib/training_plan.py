"""What a fine-tune trains on and how its results become table rows (Dagster-free).

A fine-tune = (encoder, a distribution over the 341 items, the profile's recipe, one or more seeds). The inputs
are written as JSONL next to the checkpoint so the training entry point needs nothing but files; the rows of
`finetune_comparison` and `anli_ood` average the seeds (mean and sd) and keep each seed's checkpoint.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hlv_assets.lib import mnli_stage
from hlv_assets.lib.profiles import Profile

#: per ChaosNLI split; `jsd` and `majority_accuracy` are the ChaosNLI scorer's "JSD" and "New Acc."
SOFT_METRICS = ("kl_published", "kl_per_item", "ce_loss", "weighted_f1", "macro_f1", "accuracy", "jsd",
                "majority_accuracy")
#: per ANLI round (one gold label: `accuracy` is the only accuracy that applies)
ANLI_METRICS = ("weighted_f1", "accuracy", "ce_loss")
TRAINING_VERSION = "finetune-v2"  # v2: the final weights by default (v1 kept the best dev macro-F1)


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
    return tuple(e for e in ENCODERS
                 if e.env is None or environ.get(e.env, "").strip() or mnli_stage.stage_configured(e.name, environ))


def unconfigured_message(asset: str, environ: Mapping[str, str] | None = None) -> str | None:
    """One line for an asset of an encoder that is not configured (`finetune_bert`, `finetune_bert_baseline`,
    ...), else None."""
    configured = {e.name for e in configured_encoders(environ)}
    for encoder in ENCODERS:
        names = {f"finetune_{encoder.name}{suffix}" for suffix in ("", "_baseline", "_reference")}
        if asset in names and encoder.name not in configured:
            return (f"{asset} is not configured: set {encoder.env} to an MNLI-fine-tuned {encoder.family} "
                    f"checkpoint (path or HF id), or {mnli_stage.ENV_TRAIN} and {mnli_stage.ENV_DEV} to MNLI "
                    f"files to train one (mnli_{encoder.name})")
        if asset == f"mnli_{encoder.name}" and encoder.name in mnli_stage.BASES:
            if environ_value(environ, encoder.env):
                return f"{asset} is not used: {encoder.env} names the starting checkpoint; unset it to train one"
            return (f"{asset} is not configured: set {mnli_stage.ENV_TRAIN} and {mnli_stage.ENV_DEV} to MNLI JSONL "
                    "files (premise, hypothesis, label)")
    return None


def check_start_heads(assets: Sequence[str], profile_name: str, environ: Mapping[str, str] | None = None) -> None:
    """Refuse in one line (LabelMappingError, SettingsError), before anything runs, a fine-tune of `assets` whose
    user-supplied checkpoint cannot be read or has a head whose labels cannot be mapped to [E, N, C]."""
    for encoder in ENCODERS:
        names = {f"finetune_{encoder.name}{suffix}" for suffix in ("", "_baseline", "_reference")}
        if encoder.env and environ_value(environ, encoder.env) and names & set(assets):
            mnli_stage.check_start_head(encoder.name, encoder.env, profile_name, environ)


def environ_value(environ: Mapping[str, str] | None, name: str | None) -> str:
    return ((os.environ if environ is None else environ).get(name or "") or "").strip()


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
        return [{"uid": r.uid, "premise": r.premise, "hypothesis": r.hypothesis, "target": list(map(float, r.hjd)),
                 **({"majority_label": r.majority_label} if getattr(r, "majority_label", None) else {})}
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
    """The FinetuneConfig fields of SPEC §5, shortened by the profile, with its checkpoint selection and
    precision."""
    config = {"seed": seed, "epochs": profile.finetune_epochs, "max_steps": profile.finetune_max_steps,
              "eval_every": profile.eval_every, "encoder": encoder.model, "device": "auto",
              "selection": profile.finetune_selection, "bf16": profile.finetune_precision == "bf16"}
    if tiny_encoder:
        config["random_init"] = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                 "intermediate_size": 64}
    return config


def _mean_sd(values: list) -> tuple[float | None, float | None]:
    if not values or None in values:  # a seed without the metric (e.g. no majority labels): none for the row
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _one(per_seed: list[dict], key: str, default: str) -> str:
    values = sorted({str(m["metrics"].get(key, default)) for m in per_seed})
    return values[0] if len(values) == 1 else "mixed: " + ", ".join(values)


def seed_rows(per_seed: list[dict], key: dict, *, encoder: EncoderSpec) -> tuple[dict, dict]:
    """(finetune_comparison data, anli_ood data) from each seed's metrics.json and checkpoint: the mean and sd
    over the seeds (`<split>_<metric>`, `<split>_<metric>_sd`), each seed's own numbers under `per_seed`, and
    which weights they are (`selection`: final, best-dev-..., or none for a run without training), `seeds`
    and `precision` (fp32 / bf16)."""
    about = {"selection": _one(per_seed, "selection", "none"), "seeds": [m["seed"] for m in per_seed],
             "precision": _one(per_seed, "precision", "fp32")}
    ft = {**key, "encoder": encoder.family, "encoder_model": encoder.model, **about,
          "checkpoints": [m.get("checkpoint") for m in per_seed]}
    ood = {**key, "encoder": encoder.family, "encoder_model": encoder.model, **about}
    ft_seeds = [{"seed": m["seed"]} for m in per_seed]
    ood_seeds = [{"seed": m["seed"]} for m in per_seed]
    for split in ("dev", "test"):
        for metric in SOFT_METRICS:
            values = [m["metrics"][split].get(metric) for m in per_seed]
            ft[f"{split}_{metric}"], ft[f"{split}_{metric}_sd"] = _mean_sd(values)
            for row, value in zip(ft_seeds, values, strict=True):
                row[f"{split}_{metric}"] = value
    rounds = sorted(per_seed[0]["metrics"].get("anli", {}))
    for round_ in rounds:
        for metric in ANLI_METRICS:
            values = [m["metrics"]["anli"][round_][metric] for m in per_seed]
            ood[f"{round_.lower()}_{metric}"], ood[f"{round_.lower()}_{metric}_sd"] = _mean_sd(values)
            for row, value in zip(ood_seeds, values, strict=True):
                row[f"{round_.lower()}_{metric}"] = value
    ft["per_seed"], ood["per_seed"] = ft_seeds, ood_seeds
    return ft, ood
