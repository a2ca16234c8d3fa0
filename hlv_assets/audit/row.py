"""The store side of an audit: a result row, its earlier versions and what changed between them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from hlv_assets.defs.partitions import display_partition
from hlv_assets.store.models import ResultRow
from hlv_assets.store.results import ResultStore


class AuditError(LookupError):
    """No row with that id (or an ambiguous prefix)."""


def _versions(engine, row_id: str) -> list:
    versions = ResultStore(engine).row_versions(row_id)
    if versions:
        return versions
    with Session(engine) as session:  # a unique prefix is enough, as with git hashes
        ids = sorted(
            set(
                session.exec(
                    select(ResultRow.row_id).where(ResultRow.row_id.startswith(row_id, autoescape=True))
                )
            )
        )
    if not ids:
        raise AuditError(
            f"no result row with id {row_id!r} (ids are printed by `hlv tables ... --format json`)"
        )
    if len(ids) > 1:
        raise AuditError(f"{row_id!r} matches {len(ids)} rows: {', '.join(ids[:10])}")
    return ResultStore(engine).row_versions(ids[0])


def _when(value) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _history(versions: list) -> list[dict]:
    """Every version, newest first, with what changed relative to the version before it."""
    out = []
    for i, v in enumerate(versions):
        older = versions[i + 1] if i + 1 < len(versions) else None
        changed = {}
        if older is not None:
            for key in sorted(set(v.data) | set(older.data)):
                if v.data.get(key) != older.data.get(key):
                    changed[key] = {"before": older.data.get(key), "after": v.data.get(key)}
        out.append(
            {
                "created_at": _when(v.created_at),
                "replaced_at": _when(v.replaced_at),
                "current": v.current,
                "run_id": v.run_id,
                "code_version": v.code_version,
                "inputs_sha256": v.inputs_sha256,
                "asset_partition": _asset_partition(v.asset_key, v.partition_key),
                "changed": changed,
            }
        )
    return out


def _asset_partition(asset: str, partition: str | None) -> str:
    return f"{asset}[{display_partition(partition)}]" if partition else asset


def _plain(value) -> Any:
    raw = getattr(value, "value", value)
    if isinstance(raw, (str, int, float, bool, type(None), list, dict)):
        return raw
    return str(raw)
