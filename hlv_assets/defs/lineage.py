"""Lineage recorded on every stored row, and the metadata every asset reports (result tables with column
schemas, previews, plots)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping, Sequence

import dagster as dg
import numpy as np
import pandas as pd

from hlv_assets.defs.check_gate import is_forced
from hlv_assets.lib.profiles import current_profile_name


def versioned(base: str) -> str:
    """Code version of an asset: its logic version plus the profile (`HLV_PROFILE`, validated, read when the
    definitions load), so demo and paper never mix; the `settings` resource refuses a run under another one."""
    return f"{base}+{current_profile_name()}"


def combine_sha256(parts: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def lineage(context: dg.AssetExecutionContext, inputs_sha256: str) -> dict:
    code_version = context.assets_def.code_versions_by_key.get(context.asset_key) or ""
    out = {"run_id": context.run.run_id, "code_version": code_version, "inputs_sha256": inputs_sha256}
    if is_forced(context.run):  # built past a failed blocking check (`hlv run --force`): the rows say so
        out["forced"] = True
    return out


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


#: What the columns of the result tables mean: the column descriptions of their table metadata.
COLUMN_DOCS = {
    "id": "row id in the results store (hlv audit <id>)",
    "source": "distribution compared with the ChaosNLI HJD or trained on (a baseline, mjd), or a fine-tune "
              "reference (zero-shot, start-checkpoint)",
    "llm": "judge LLM (mjd rows)", "explanations": "explanation source the judge read (mjd rows)",
    "judge_partition": "<judge>/<explanations>",
    "conversion": "letter scores -> distribution: normalize (as published) or softmax (T = 20)",
    "n": "items compared", "kl": "KL(HJD || other) in nats, mean over items", "jsd": "Jensen-Shannon distance",
    "tvd": "total variation distance", "dcor": "distance correlation (one number over all items)",
    "kind": "replacement: model / noise explanations (none = the judge without explanations)",
    "r": "human explanations replaced (of 4)", "set": "explanation set", "scope": "within a set / between it and human",
    "filled_share": "share of the human slots the selection filled", "poster_share": "the poster's share",
    "n_slots": "human explanation slots", "n_filled": "slots filled with a model explanation",
    "lex1": "lexical similarity, word 1-grams", "lex2": "lexical, 2-grams", "lex3": "lexical, 3-grams",
    "syn1": "syntactic similarity, POS 1-grams", "syn2": "syntactic, 2-grams", "syn3": "syntactic, 3-grams",
    "cos": "semantic: cosine similarity of sentence embeddings", "euc": "semantic: Euclidean similarity",
    "avg": "mean of the eight similarity columns",
    "split": "evaluation split (ChaosNLI dev / test, ANLI rounds r1-r3)", "metric": "fine-tune metric",
    "mean": "mean over seeds", "sd": "standard deviation over seeds (empty with one seed)",
    "seeds": "fine-tuning seeds",
}


def _display(value, digits: int):
    """A table cell: floats rounded for display (stored rows keep full precision), NaN / inf written out."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return round(value, digits) if math.isfinite(value) else str(value)
    return str(value)


_NON_FINITE = ("nan", "inf", "-inf")


def _column_type(values: Sequence) -> str:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if present and all((isinstance(v, (int, float)) and not isinstance(v, bool)) or v in _NON_FINITE
                       for v in present):
        return "float"
    return "string"


def result_table(records: Sequence[Mapping], columns: Sequence[str], *, digits: int = 4) -> dg.MetadataValue:
    """Result rows as Dagster table metadata with a column schema (type and meaning of each column), floats
    rounded to `digits` decimals for display. Columns absent from every record are left out."""
    shown = [c for c in columns if any(c in r for r in records)] if records else list(columns)
    cells = [{c: _display(r.get(c), digits) for c in shown} for r in records]
    schema = dg.TableSchema(columns=[
        dg.TableColumn(c, _column_type([row[c] for row in cells]), description=COLUMN_DOCS.get(c))
        for c in shown])
    return dg.MetadataValue.table(records=[dg.TableRecord(row) for row in cells], schema=schema)


def stored_rows_table(rows: Sequence[Mapping], columns: Sequence[str], *, digits: int = 4) -> dg.MetadataValue:
    """`result_table` of rows as the results store takes them ({"row_id", "data"}): the id first."""
    return result_table([{"id": r["row_id"], **r["data"]} for r in rows], columns, digits=digits)


def png_markdown(png: bytes, alt: str) -> str:
    """A PNG inline in markdown metadata (the asset page shows it)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def finetune_table(*datas: Mapping, digits: int = 4) -> dg.MetadataValue:
    """Fine-tune rows (`finetune_comparison` and `anli_ood` data) as one long table: split, metric, mean over
    seeds, standard deviation (NaN with one seed); a `source` column when the rows come from several sources
    (the reference asset's zero-shot and start-checkpoint rows)."""
    several = len({d["source"] for d in datas if "source" in d}) > 1
    records = []
    for data in datas:
        for key, value in data.items():
            split, _, metric = key.partition("_")
            if split not in ("dev", "test", "r1", "r2", "r3") or key.endswith("_sd"):
                continue
            records.append({**({"source": data.get("source")} if several else {}), "split": split,
                            "metric": metric, "mean": value, "sd": data.get(f"{key}_sd"),
                            "seeds": len(data.get("seeds") or [])})
    return result_table(records, ["source", "split", "metric", "mean", "sd", "seeds"], digits=digits)
