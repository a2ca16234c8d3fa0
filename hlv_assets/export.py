"""`hlv export`: write a stored asset (its Parquet value) out as JSONL, CSV, JSON or Parquet."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from hlv_assets.lib.paths import output_dir
from hlv_assets.lib.profiles import current_profile_name


def resolve_partition(asset: str, partition: str | None) -> str | None:
    """The IO manager's file stem for a partition given in CLI form.

    `explanation_sets` accepts `<generator>/<set>` as well as its key `<generator>.<set>`; judgment assets take
    `<llm>/<explanations>` or Dagster's `explanations|llm`.
    """
    if partition is None:
        return None
    if asset == "explanation_sets":
        return partition.replace("/", ".", 1) if "/" in partition else partition
    if "/" in partition or "|" in partition:
        from hlv_assets.defs.partitions import parse_partition

        key = parse_partition(partition)
        return "__".join(f"{k}={v}" for k, v in sorted(key.keys_by_dimension.items()))
    return partition


def asset_path(asset: str, partition: str | None, profile: str | None = None) -> Path:
    base = output_dir() / "assets" / (profile or current_profile_name()) / asset
    stem = resolve_partition(asset, partition)
    path = base / f"{stem}.parquet" if stem is not None else base.with_suffix(".parquet")
    if not path.exists():
        have = sorted(p.stem for p in base.glob("*.parquet")) if base.is_dir() else []
        hint = f"; stored partitions: {', '.join(have)}" if have else ""
        raise SystemExit(f"no stored value for {asset}" + (f"[{partition}]" if partition else "") +
                         f" at {path} (materialize it first: hlv run {asset}){hint}")
    return path


def _plain(value):
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def records(frame: pd.DataFrame) -> list[dict]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def chaosnli_predictions(asset: str, partition: str | None, profile: str | None = None, split: str = "test") -> dict:
    """A fine-tune's ChaosNLI predictions in the leaderboard's format: {model: {uid: {uid,
    predicted_probabilities [E, N, C], predicted_label}}}, for the official ChaosNLI scorer."""
    from hlv_assets.lib.nli import WORDS

    stem = (resolve_partition(asset, partition) or "").replace("/", "_")
    if partition and ("/" in partition or "|" in partition):
        from hlv_assets.defs.partitions import parse_partition

        key = parse_partition(partition)
        stem = f"{key.keys_by_dimension['explanations']}__{key.keys_by_dimension['llm']}"
    encoder = asset.removeprefix("finetune_").removesuffix("_baseline")
    base = output_dir() / "checkpoints" / (profile or current_profile_name()) / encoder / stem
    seeds = sorted(base.glob("seed*/predictions.json"))
    if not seeds:
        raise SystemExit(f"no predictions for {asset}[{partition}] under {base}: materialize it first")
    out = {}
    for path in seeds:
        preds = json.loads(path.read_text())
        name = f"{asset}[{partition}]/{path.parent.name}"
        out[name] = {r["uid"]: {"uid": r["uid"], "predicted_probabilities": r["probs"],
                                "predicted_label": WORDS[max(range(3), key=lambda i: r["probs"][i])]}
                     for r in preds[split]}
    return out


def export_asset(asset: str, partition: str | None, fmt: str, output: str | None, profile: str | None = None):
    if fmt == "chaosnli":
        text = json.dumps(chaosnli_predictions(asset, partition, profile), indent=1)
        if output:
            Path(output).write_text(text, encoding="utf-8")
            return output
        sys.stdout.write(text + "\n")
        return None
    frame = pd.read_parquet(asset_path(asset, partition, profile))
    if asset == "explanation_sets":
        frame = frame[["uid", "premise", "hypothesis", "explanations"]]
    if fmt == "parquet":
        if not output:
            raise SystemExit("--format parquet needs -o FILE")
        frame.to_parquet(output, index=False)
        return output
    if fmt == "csv":
        text = frame.assign(**{c: frame[c].map(lambda v: json.dumps(_plain(v)))
                              for c in frame.columns if frame[c].dtype == object and
                              frame[c].map(lambda v: hasattr(v, "__len__") and not isinstance(v, str)).any()}
                           ).to_csv(index=False)
    elif fmt == "json":
        text = json.dumps(records(frame), ensure_ascii=False, indent=2)
    else:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records(frame))
    if output:
        Path(output).write_text(text, encoding="utf-8")
        return output
    sys.stdout.write(text)
    return None
