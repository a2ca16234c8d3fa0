"""`audit(row_id)`: the whole report of one result row, store side and Dagster side."""

from __future__ import annotations

from typing import Any

from hlv_assets.audit.records import (
    _chain,
    _checks_in_run,
    _freshness,
    _latest_before,
    _materialization_in_run,
    _run,
    _Staleness,
)
from hlv_assets.audit.row import _asset_partition, _history, _versions, _when
from hlv_assets.audit.sections import _mjd_section
from hlv_assets.audit.sources import _checkpoints, _raw_inputs
from hlv_assets.definitions import defs as code_location
from hlv_assets.lib import raw
from hlv_assets.store.db import default_url, get_engine


def _written_by(row) -> dict:
    return {
        "asset": row.asset_key,
        "partition": row.partition_key,
        "asset_partition": _asset_partition(row.asset_key, row.partition_key),
        "run_id": row.run_id,
        "code_version": row.code_version,
        "profile": row.profile,
        "created_at": _when(row.created_at),
        "inputs_sha256": row.inputs_sha256,
        "forced": bool(row.data.get("forced")),
    }


def _credited_start(instance, row, where: str, notes: list[str]):
    """The materialization that committed the row's values, or None. A row is credited only to the run that
    wrote its values and committed them: a materialization of the asset in that run, with no failed blocking
    check there (a run whose check failed, or that failed after writing, is named but not credited)."""
    start = _materialization_in_run(instance, row.asset_key, row.partition_key or None, row.run_id)
    if start is None:
        notes.append(
            f"no materialization of {where} in run {row.run_id or '(none)'}: the row is not credited to that "
            "run and the chain starts from the store only"
        )
        return None
    failed = [
        name
        for name, check in _checks_in_run(
            instance, row.run_id, row.asset_key, start.event_log_entry.asset_materialization.partition
        ).items()
        if not check["passed"]
    ]
    if failed:
        notes.append(
            f"run {row.run_id} failed the check(s) {', '.join(sorted(failed))} of {where}: its values are not "
            "credited to it"
        )
        return None
    return start


def _dagster_side(report: dict, row, instance, defs) -> tuple[Any, list[dict]]:
    """Fill in the run, the credited materialization chain, staleness and freshness; returns (staleness, chain)."""
    writer = report["written_by"]
    writer["run"] = _run(instance, row.run_id)
    start = _credited_start(instance, row, writer["asset_partition"], report["notes"])
    writer["credited"] = start is not None
    if defs is None:
        defs = code_location() if callable(code_location) else code_location
    staleness = _Staleness(instance, defs)
    chain = _chain(instance, staleness.graph, start) if start is not None else []
    for node in chain:
        latest = _latest_before(instance, node["asset"], node["partition"], None)
        node["latest"] = latest is not None and latest.storage_id == node["storage_id"]
        node["stale"] = staleness(node["asset"], node["partition"])
    writer_partition = chain[0]["partition"] if chain else row.partition_key or None
    writer["stale"] = staleness(row.asset_key, writer_partition)
    report["freshness"] = _freshness(writer["stale"], chain)
    return staleness, chain


def _about(report: dict, row, engine, instance, staleness, chain: list[dict], verify: bool) -> None:
    """The sections on what the row is about: an MJD (judge, prompts, generator) and a fine-tune."""
    data = row.data
    dist_asset = data.get("distribution_asset")
    if data.get("source") == "mjd" and not dist_asset:  # an MJD row of the comparison table
        report["mjd"] = _mjd_section(
            engine, instance, staleness, row.partition_key, data.get("conversion"), row.profile, chain
        )
    if "checkpoints" in data or "checkpoint_path" in data:
        report["finetune"] = {
            "encoder": data.get("encoder"),
            "encoder_model": data.get("encoder_model"),
            "seeds": data.get("seeds"),
            "checkpoints": _checkpoints(data, verify),
            "distribution_asset": dist_asset,
            "distribution_partition": data.get("distribution_partition"),
        }
        if dist_asset and dist_asset.startswith("mjd:"):
            partition = data.get("distribution_partition") or ""
            conversion = dist_asset.split(":", 1)[1]
            report["mjd"] = _mjd_section(
                engine, instance, staleness, partition, conversion, row.profile, chain
            )


def _raw_files(report: dict, chain: list[dict], verify: bool) -> list[dict]:
    recorded: dict[str, str] = {}
    for node in chain:
        inputs = node["metadata"].get("inputs_sha256")
        if isinstance(inputs, dict):
            recorded.update({k: v for k, v in inputs.items() if "/" in k})  # data-pack paths, not asset names
    if not recorded:
        recorded = {raw.CHAOSNLI_MNLI: "", raw.VARIERR: "", raw.HLV_ITEMS: ""}
        report["notes"].append("no raw materialization in the chain: showing the item files' pinned hashes")
    return _raw_inputs(recorded, verify)


def audit(row_id: str, *, engine=None, instance=None, defs=None, verify: bool = True) -> dict:
    """The audit report of one result row (JSON-ready). `instance`/`defs`: the Dagster instance and
    definitions (None: the store-side half only)."""
    engine = engine or get_engine(default_url())
    versions = _versions(engine, row_id)
    row = next((v for v in versions if v.current), versions[0])
    report: dict[str, Any] = {
        "id": row.row_id,
        "table": row.table_name,
        "current": row.current,
        "row": {**row.data, "profile": row.profile, "items_sha256": row.items_sha256},
        "written_by": _written_by(row),
        "notes": [],
    }
    if not row.current:
        report["notes"].append("this row has no current version: it was replaced and not rewritten")
    if row.data.get("forced"):
        report["notes"].append("built with --force past a failed blocking check of an input")
    staleness, chain = None, []
    if instance is None:
        report["notes"].append("no Dagster instance: runs, materializations and staleness are not shown")
    else:
        staleness, chain = _dagster_side(report, row, instance, defs)
    report["chain"] = chain
    _about(report, row, engine, instance, staleness, chain, verify)
    report["raw_inputs"] = _raw_files(report, chain, verify)
    report["history"] = _history(versions)
    return report
