"""Writing and reading results: a partition's rows are replaced in one transaction, old rows kept as history."""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable

import pandas as pd
from sqlalchemy import text, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from hlv_assets.lib.row_ids import TABLE_PREFIXES, make_row_id  # noqa: F401  (re-exported)
from hlv_assets.store.models import Artifact, DistributionRow, LLMCall, ResultRow, utcnow

PROB_COLUMNS = ("p_e", "p_n", "p_c")


def _lock(session: Session, *parts: str) -> None:
    """Serialise writers of one partition: a transaction-scoped advisory lock on PostgreSQL (SQLite already
    serialises writers through its database lock)."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32("|".join(parts).encode()) - 2**31
        session.exec(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=key))


class NonFiniteValueError(ValueError):
    """A NaN or an infinity on its way into the store: refused, whatever the database would accept."""


def _where(asset_key: str, partition_key: str) -> str:
    return f"{asset_key}[{partition_key}]" if partition_key else asset_key


def _non_finite(value, path: str = "") -> tuple[str, float] | None:
    """The first (field path, value) in a JSON-ready value that is a non-finite float, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path, value
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def check_finite_rows(rows: list[dict], asset_key: str, partition_key: str) -> None:
    """Refuse result rows holding NaN or infinity anywhere in `data`, naming asset, partition, row and field."""
    for row in rows:
        found = _non_finite(row.get("data"))
        if found:
            raise NonFiniteValueError(
                f"refusing to store {_where(asset_key, partition_key)}: row {row.get('row_id')} field "
                f"{found[0]!r} is {found[1]} (NaN and infinity are never stored; fix the computation upstream)")


def check_finite_distribution(frame: pd.DataFrame, asset_key: str, partition_key: str) -> None:
    """Refuse a distribution frame with a NaN or infinite probability, naming asset, partition, uid and field."""
    for col in PROB_COLUMNS:
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            i = bad[0]
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise NonFiniteValueError(
                f"refusing to store {_where(asset_key, partition_key)}: uid {frame.uid.iloc[i]} field {col!r} "
                f"is {frame[col].iloc[i]!r}{more} (NaN and infinity are never stored; fix the computation "
                "upstream)")


class ResultStore:
    def __init__(self, engine: Engine):
        self.engine = engine

    # ---- result tables -------------------------------------------------------------------------------
    def replace_rows(self, table_name: str, rows: Iterable[dict], *, asset_key: str, partition_key: str,
                     profile: str, lineage: dict) -> int:
        """Make `rows` the current rows of (table, asset partition, profile); the replaced rows stay as history.

        Each row is {"row_id", "items_sha256", "data"}. One transaction: a crash leaves the old rows current.
        A NaN or infinity anywhere in a row's data refuses the whole write (`NonFiniteValueError`). A lineage
        with `forced: True` (built past a failed blocking check with `--force`) is recorded in each row's data.
        """
        lineage = dict(lineage)
        forced = bool(lineage.pop("forced", False))
        rows = [{**r, "data": {**r["data"], "forced": True}} if forced else r for r in _listed(rows)]
        check_finite_rows(rows, asset_key, partition_key)
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

    # ---- per-item distributions ----------------------------------------------------------------------
    def replace_distribution(self, frame: pd.DataFrame, *, asset_key: str, partition_key: str, profile: str,
                             item_set: str, lineage: dict) -> int:
        """Make `frame` (uid, p_e, p_n, p_c) the current distribution of (asset, partition, profile, item set);
        the replaced rows stay as history. Non-finite probabilities refuse the whole write."""
        return self.replace_distributions({asset_key: frame}, partition_key=partition_key, profile=profile,
                                          item_set=item_set, lineage=lineage)

    def replace_distributions(self, frames: dict[str, pd.DataFrame], *, partition_key: str, profile: str,
                              item_set: str, lineage: dict, retire_prefix: str | None = None) -> int:
        """Several distributions of one partition (an MJD's conversions, keyed `mjd:<conversion>`) made current
        in one transaction: all or none. `retire_prefix`: other current keys with this prefix (a conversion
        refused this time) stop being current too, so the current rows are exactly this value."""
        for asset_key, frame in frames.items():
            check_finite_distribution(frame, asset_key, partition_key)
        lineage = {k: v for k, v in lineage.items() if k != "forced"}
        now = utcnow()
        with Session(self.engine) as session:
            for asset_key in sorted(frames):  # one lock order: concurrent writers never deadlock
                _lock(session, "dist", asset_key, partition_key, profile, item_set)
            replaced = DistributionRow.asset_key.in_(list(frames))
            if retire_prefix:
                replaced = replaced | DistributionRow.asset_key.startswith(retire_prefix, autoescape=True)
            session.exec(
                update(DistributionRow)
                .where(replaced, DistributionRow.partition_key == partition_key,
                       DistributionRow.profile == profile, DistributionRow.item_set == item_set,
                       DistributionRow.current == True)  # noqa: E712
                .values(current=False, replaced_at=now)
            )
            for asset_key, frame in frames.items():
                for uid, pe, pn, pc in zip(frame.uid, frame.p_e, frame.p_n, frame.p_c):
                    session.add(DistributionRow(asset_key=asset_key, partition_key=partition_key, profile=profile,
                                                item_set=item_set, uid=str(uid), p_e=float(pe), p_n=float(pn),
                                                p_c=float(pc), created_at=now, **lineage))
            session.commit()
        return sum(len(f) for f in frames.values())

    def distribution(self, asset_key: str, partition_key: str, profile: str) -> pd.DataFrame:
        with Session(self.engine) as session:
            q = select(DistributionRow).where(
                DistributionRow.asset_key == asset_key, DistributionRow.partition_key == partition_key,
                DistributionRow.profile == profile, DistributionRow.current == True,  # noqa: E712
            ).order_by(DistributionRow.pk)
            rows = list(session.exec(q))
        return pd.DataFrame([{"uid": r.uid, "p_e": r.p_e, "p_n": r.p_n, "p_c": r.p_c} for r in rows],
                            columns=["uid", "p_e", "p_n", "p_c"])

    def conversions(self, asset_key: str, partition_key: str, profile: str) -> list[str]:
        """The conversions stored as `<asset>:<conversion>` for a partition (an MJD's normalize/softmax)."""
        with Session(self.engine) as session:
            q = select(DistributionRow.asset_key).where(
                DistributionRow.asset_key.startswith(f"{asset_key}:", autoescape=True),
                DistributionRow.partition_key == partition_key,
                DistributionRow.profile == profile, DistributionRow.current == True,  # noqa: E712
            ).distinct()
            return sorted(k.split(":", 1)[1] for k in session.exec(q))

    def distribution_frame(self, asset_key: str, partition_key: str, profile: str) -> pd.DataFrame:
        """A distribution asset's current value as the asset returned it: `uid, p_e, p_n, p_c`, or for an asset
        stored per conversion (`mjd:normalize`, `mjd:softmax`) `uid, conversion, p_e, p_n, p_c`."""
        conversions = self.conversions(asset_key, partition_key, profile)
        if not conversions:
            return self.distribution(asset_key, partition_key, profile)
        parts = [self.distribution(f"{asset_key}:{c}", partition_key, profile).assign(conversion=c)
                 for c in conversions]
        return pd.concat(parts, ignore_index=True)[["uid", "conversion", *PROB_COLUMNS]]

    def distribution_lineage(self, asset_key: str, partition_key: str, profile: str) -> DistributionRow | None:
        """One current row of a distribution (its lineage: run, code version, inputs), or None."""
        with Session(self.engine) as session:
            q = select(DistributionRow).where(
                (DistributionRow.asset_key == asset_key)
                | DistributionRow.asset_key.startswith(f"{asset_key}:", autoescape=True),
                DistributionRow.partition_key == partition_key, DistributionRow.profile == profile,
                DistributionRow.current == True,  # noqa: E712
            ).limit(1)
            return session.exec(q).first()

    # ---- artifacts (explanation sets, judgment scores, checkpoints) ----------------------------------
    def replace_artifacts(self, kind: str, records: Iterable[tuple[str, dict]], *, asset_key: str,
                          partition_key: str, profile: str, lineage: dict) -> int:
        lineage = {k: v for k, v in lineage.items() if k != "forced"}
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

    def artifacts(self, kind: str, partition_key: str | None = None, profile: str | None = None,
                  limit: int | None = None) -> list[Artifact]:
        with Session(self.engine) as session:
            q = select(Artifact).where(Artifact.kind == kind, Artifact.current == True)  # noqa: E712
            if partition_key is not None:
                q = q.where(Artifact.partition_key == partition_key)
            if profile is not None:
                q = q.where(Artifact.profile == profile)
            return list(session.exec(q.order_by(Artifact.pk).limit(limit)))


def _listed(rows: Iterable[dict]) -> list[dict]:
    """Rows as a list, so they are all checked before anything is written; a generator that raises halfway
    raises here, before the transaction (the old rows stay current either way)."""
    return list(rows)


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
