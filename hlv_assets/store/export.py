"""`hlv export`: write a stored asset out as JSONL, CSV, JSON or Parquet: a distribution from the results
store (its only copy), any other asset from its Parquet value. Every export is valid JSON/CSV: a NaN or an
infinity is refused in one line, never written as `NaN`."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd

from hlv_assets.lib.nli import WORDS
from hlv_assets.lib.paths import output_dir
from hlv_assets.lib.profiles import current_profile_name
from hlv_assets.store.db import get_engine
from hlv_assets.store.results import ResultStore


def partition_keys(asset: str, partition: str | None) -> list[str]:
    """The Dagster key strings a partition given in CLI form may stand for, most likely first.

    `explanation_sets` accepts `<generator>/<set>` as well as its key `<generator>.<set>`. A two-dimension key
    `<a>/<b>` (`<judge>/<explanations>`) is Dagster's `b|a` string when the dimensions sort that way, as the
    judgment partitions do; the store layer does not know the dimension names, so both orders are tried.
    """
    if partition is None:
        return [""]
    if asset == "explanation_sets":
        return [partition.replace("/", ".", 1) if "/" in partition else partition]
    if "/" in partition:
        a, b = partition.split("/", 1)
        return [f"{b}|{a}", f"{a}|{b}"]
    return [partition]


def _parquet_candidates(base: Path, key: str) -> list[Path]:
    """The ParquetIOManager's file for a key: `<key>.parquet`, or `<dim>=<v1>__<dim>=<v2>.parquet`."""
    if "|" not in key:
        return [base / f"{key}.parquet"]
    first, second = key.split("|", 1)
    return sorted(base.glob(f"*={first}__*={second}.parquet"))


def asset_path(asset: str, partition: str | None, profile: str | None = None) -> Path:
    base = output_dir() / "assets" / (profile or current_profile_name()) / asset
    if partition is None:
        path = base.with_suffix(".parquet")
        candidates = [path]
    else:
        candidates = [p for key in partition_keys(asset, partition) for p in _parquet_candidates(base, key)]
        path = candidates[0] if candidates else base / f"{partition}.parquet"
    found = next((p for p in candidates if p.exists()), None)
    if found is None:
        have = sorted(p.stem for p in base.glob("*.parquet")) if base.is_dir() else []
        hint = f"; stored partitions: {', '.join(have)}" if have else ""
        raise SystemExit(f"no stored value for {asset}" + (f"[{partition}]" if partition else "") +
                         f" at {path} (materialize it first: hlv run {asset}){hint}")
    return found


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
    encoder = asset.removeprefix("finetune_").removesuffix("_baseline")
    root = output_dir() / "checkpoints" / (profile or current_profile_name()) / encoder
    stems = [k.replace("|", "__").replace("/", "_") for k in partition_keys(asset, partition)]
    base = next((root / s for s in stems if (root / s).is_dir()), root / stems[0])
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


def stored_frame(asset: str, partition: str | None, profile: str | None = None) -> pd.DataFrame:
    """The asset's current value: a distribution from the results store, else its Parquet file."""
    profile = profile or current_profile_name()
    store = ResultStore(get_engine())
    for key in partition_keys(asset, partition):
        frame = store.distribution_frame(asset, key, profile)
        if not frame.empty:
            return frame
    return pd.read_parquet(asset_path(asset, partition, profile))


def refuse_non_finite(value, where: str, path: str = "") -> None:
    """A one-line refusal for the first NaN or infinity in a JSON-ready value (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise SystemExit(f"{where}: field {path!r} is {value}, which JSON and CSV cannot hold; "
                         "nothing was written (rerun the asset that produced it)")
    if isinstance(value, dict):
        for k, v in value.items():
            refuse_non_finite(v, where, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            refuse_non_finite(v, where, f"{path}[{i}]")


def _checked(rows: list[dict], asset: str, partition: str | None) -> list[dict]:
    name = f"{asset}[{partition}]" if partition else asset
    for i, row in enumerate(rows, start=1):
        refuse_non_finite(row, f"{name} row {i}" + (f" (uid {row['uid']})" if "uid" in row else ""))
    return rows


def _text(frame: pd.DataFrame, fmt: str, asset: str, partition: str | None) -> str:
    rows = _checked(records(frame), asset, partition)
    if fmt == "csv":
        nested = [c for c in frame.columns if frame[c].dtype == object and
                  frame[c].map(lambda v: hasattr(v, "__len__") and not isinstance(v, str)).any()]
        table = pd.DataFrame(rows, columns=list(frame.columns))
        for c in nested:
            table[c] = table[c].map(lambda v: json.dumps(v, allow_nan=False))
        return table.to_csv(index=False)
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2, allow_nan=False)
    return "".join(json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in rows)


def export_asset(asset: str, partition: str | None, fmt: str, output: str | None, profile: str | None = None):
    if fmt == "chaosnli":
        predictions = chaosnli_predictions(asset, partition, profile)
        refuse_non_finite(predictions, f"{asset}[{partition}] predictions")
        text = json.dumps(predictions, indent=1, allow_nan=False)
        if output:
            Path(output).write_text(text, encoding="utf-8")
            return output
        sys.stdout.write(text + "\n")
        return None
    frame = stored_frame(asset, partition, profile)
    if asset == "explanation_sets":
        frame = frame[["uid", "premise", "hypothesis", "explanations"]]
    if fmt == "parquet":
        if not output:
            raise SystemExit("--format parquet needs -o FILE")
        frame.to_parquet(output, index=False)
        return output
    text = _text(frame, fmt, asset, partition)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        return output
    sys.stdout.write(text)
    return None
