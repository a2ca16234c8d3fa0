"""Lineage recorded on every stored row, and the metadata every asset reports."""

from __future__ import annotations

import hashlib
import json

import dagster as dg
import pandas as pd

from hlv_assets.lib.profiles import current_profile_name


def versioned(base: str) -> str:
    """Code version of an asset: its logic version plus the profile, so demo and paper never mix."""
    return f"{base}+{current_profile_name()}"


def combine_sha256(parts: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def partition_str(context: dg.AssetExecutionContext) -> str:
    return context.partition_key if context.has_partition_key else ""


def lineage(context: dg.AssetExecutionContext, inputs_sha256: str) -> dict:
    code_version = context.assets_def.code_versions_by_key.get(context.asset_key) or ""
    return {"run_id": context.run.run_id, "code_version": code_version, "inputs_sha256": inputs_sha256}


def frame_sha256(frame: pd.DataFrame) -> str:
    return hashlib.sha256(frame.to_json(orient="records", double_precision=15).encode()).hexdigest()


def preview(frame: pd.DataFrame, rows: int = 5) -> dg.MetadataValue:
    shown = frame.head(rows).copy()
    for col in shown.columns:
        shown[col] = shown[col].map(lambda v: (str(v)[:80] + "…") if len(str(v)) > 80 else v)
    return dg.MetadataValue.md(shown.to_markdown(index=False))


def frame_metadata(frame: pd.DataFrame, inputs: dict[str, str]) -> dict:
    return {
        "rows": dg.MetadataValue.int(len(frame)),
        "inputs_sha256": dg.MetadataValue.json(inputs),
        "sha256": dg.MetadataValue.text(frame_sha256(frame)),
        "preview": preview(frame),
    }
