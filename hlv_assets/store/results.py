"""Writing and reading results: a partition's rows are replaced in one transaction, old rows kept as history."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable
from typing import Any

import pandas as pd
from sqlalchemy import text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hlv_assets.store.models import Artifact, DistributionRow, LLMCall, ResultRow, utcnow

TABLE_PREFIXES = {
    "distribution_comparison": "dc",
    "finetune_comparison": "ft",
    "anli_ood": "ood",
    "replacement": "rp",
    "preference_selection": "ps",
    "variability": "var",
}


def make_row_id(table_name: str, natural_key: dict[str, Any], profile: str) -> str:
    """Stable, globally unique id of a result row: table prefix + hash of (table, natural key, profile)."""
    payload = json.dumps({"t": table_name, "k": natural_key, "p": profile}, sort_keys=True, default=str)
    prefix = TABLE_PREFIXES.get(table_name, table_name[:3])
    return f"{prefix}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def _lock(session: Session, *parts: str) -> None:
    """Serialise writers of one partition: a transaction-scoped advisory lock on PostgreSQL (SQLite already
    serialises writers through its database lock)."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32("|".join(parts).encode()) - 2**31
        session.exec(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=key))


class ResultStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    # ---- result tables -------------------------------------------------------------------------------
    def replace_rows(self, table_name: str, rows: Iterable[dict], *, asset_key: str, partition_key: str,
                     profile: str, lineage: dict) -> int:
        """Make `rows` the current rows of (table, asset partition, profile); the replaced rows stay as history.

        Each row is {"row_id", "items_sha256", "data"}. One transaction: a crash leaves the old rows current.
        """
        now = utcnow()
        with Session(self.engine) as session:
            _lock(session, "result", table_name, asset_key, partition_key, profile)
            session.exec(
                update(ResultRow)
                .where(ResultRow.table_name == table_name, ResultRow.asset_key == asset_key,
                       ResultRow.partition_key == partition_key, ResultRow.profile == profile,
                       ResultRow.current == True)  # noqa: E712
                .values(current=False, replaced_at=now)
            )
            n = 0
            for row in rows:
                session.add(ResultRow(table_name=table_name, asset_key=asset_key, partition_key=partition_key,
                                      profile=profile, created_at=now, **lineage, **row))
                n += 1
            session.commit()
        return n

    def current_rows(self, table_name: str | None = None, profile: str | None = None) -> list[ResultRow]:
        with Session(self.engine) as session:
            q = select(ResultRow).where(ResultRow.current == True)  # noqa: E712
            if table_name:
                q = q.where(ResultRow.table_name == table_name)
            if profile:
                q = q.where(ResultRow.profile == profile)
            return list(session.exec(q.order_by(ResultRow.pk)))

    def row_versions(self, row_id: str) -> list[ResultRow]:
        """Every version of a row, newest first (the current one, then history)."""
        with Session(self.engine) as session:
            q = select(ResultRow).where(ResultRow.row_id == row_id).order_by(ResultRow.pk.desc())
            return list(session.exec(q))

    def table_names(self) -> list[str]:
        with Session(self.engine) as session:
            q = select(ResultRow.table_name).where(ResultRow.current == True).distinct()  # noqa: E712
            return sorted(session.exec(q))

    # ---- per-item distributions ----------------------------------------------------------------------
    def replace_distribution(self, frame: pd.DataFrame, *, asset_key: str, partition_key: str, profile: str,
                             item_set: str, lineage: dict) -> int:
        now = utcnow()
        with Session(self.engine) as session:
            _lock(session, "dist", asset_key, partition_key, profile, item_set)
            session.exec(
                update(DistributionRow)
                .where(DistributionRow.asset_key == asset_key, DistributionRow.partition_key == partition_key,
                       DistributionRow.profile == profile, DistributionRow.item_set == item_set,
                       DistributionRow.current == True)  # noqa: E712
                .values(current=False, replaced_at=now)
            )
            for uid, pe, pn, pc in zip(frame.uid, frame.p_e, frame.p_n, frame.p_c):
                session.add(DistributionRow(asset_key=asset_key, partition_key=partition_key, profile=profile,
                                            item_set=item_set, uid=str(uid), p_e=float(pe), p_n=float(pn),
                                            p_c=float(pc), created_at=now, **lineage))
            session.commit()
        return len(frame)

    def distribution(self, asset_key: str, partition_key: str, profile: str) -> pd.DataFrame:
        with Session(self.engine) as session:
            q = select(DistributionRow).where(
                DistributionRow.asset_key == asset_key, DistributionRow.partition_key == partition_key,
                DistributionRow.profile == profile, DistributionRow.current == True,  # noqa: E712
            ).order_by(DistributionRow.pk)
            rows = list(session.exec(q))
        return pd.DataFrame([{"uid": r.uid, "p_e": r.p_e, "p_n": r.p_n, "p_c": r.p_c} for r in rows],
                            columns=["uid", "p_e", "p_n", "p_c"])

    # ---- artifacts (explanation sets, judgment scores, checkpoints) ----------------------------------
    def replace_artifacts(self, kind: str, records: Iterable[tuple[str, dict]], *, asset_key: str,
                          partition_key: str, profile: str, lineage: dict) -> int:
        now = utcnow()
        with Session(self.engine) as session:
            _lock(session, "artifact", kind, asset_key, partition_key, profile)
            session.exec(
                update(Artifact)
                .where(Artifact.kind == kind, Artifact.asset_key == asset_key,
                       Artifact.partition_key == partition_key, Artifact.profile == profile,
                       Artifact.current == True)  # noqa: E712
                .values(current=False, replaced_at=now)
            )
            n = 0
            for key, data in records:
                session.add(Artifact(kind=kind, key=key, data=data, asset_key=asset_key,
                                     partition_key=partition_key, profile=profile, created_at=now, **lineage))
                n += 1
            session.commit()
        return n

    def artifacts(self, kind: str, partition_key: str | None = None, profile: str | None = None) -> list[Artifact]:
        with Session(self.engine) as session:
            q = select(Artifact).where(Artifact.kind == kind, Artifact.current == True)  # noqa: E712
            if partition_key is not None:
                q = q.where(Artifact.partition_key == partition_key)
            if profile is not None:
                q = q.where(Artifact.profile == profile)
            return list(session.exec(q.order_by(Artifact.pk)))


class SqlCallStore:
    """The LLM call cache in the results store (implements `hlv_assets.llm.callstore.CallStore`)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        with Session(self.engine) as session:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                for row in session.exec(select(LLMCall).where(LLMCall.key.in_(chunk))):
                    out[row.key] = row.record
        return out

    def put(self, key: str, record: dict) -> None:
        with Session(self.engine) as session:
            session.merge(LLMCall(key=key, record=record, backend=str(record.get("backend", "")),
                                  model_id=str(record.get("model_id", "")),
                                  operation=str(record.get("operation", ""))))
            session.commit()

    def count(self) -> int:
        with Session(self.engine) as session:
            return len(list(session.exec(select(LLMCall.key))))
