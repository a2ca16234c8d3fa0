"""Engine and sessions of the results store: `HLV_DB_URL`, else SQLite at `<HLV_HOME>/hlv.db`."""

from __future__ import annotations

import time
from functools import lru_cache

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel, create_engine

from hlv_assets.lib import settings
from hlv_assets.store import models  # noqa: F401  (registers the tables)

#: PostgreSQL advisory lock held while tables are created, so concurrent first runs do not collide
#: (two CREATE TABLEs of one name race on the `pg_type` unique index). Any constant, the same everywhere.
TABLES_LOCK_KEY = 0x686C765F74626C  # "hlv_tbl"


def default_url() -> str:
    """`HLV_DB_URL` (validated), else SQLite at `<HLV_HOME>/hlv.db` (its folder created)."""
    url = settings.db_url()
    if url:
        return url
    path = settings.home() / "hlv.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


redact = settings.redact


def get_engine(url: str | None = None) -> Engine:
    """The engine of `url` (default: `HLV_DB_URL` / `HLV_HOME` as they are now), one per URL per process."""
    return _engine(url or default_url())


def create_tables(engine: Engine, tables=None) -> None:
    """Create the store's tables (or `tables`) where missing, safely when several processes start at once:
    on PostgreSQL under a transaction-scoped advisory lock, on SQLite retrying a lost race."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": TABLES_LOCK_KEY})
            SQLModel.metadata.create_all(conn, tables=tables)
        return
    for attempt in range(5):
        try:
            SQLModel.metadata.create_all(engine, tables=tables)
            return
        except OperationalError as exc:  # another process created a table between check and create
            if "already exists" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))


@lru_cache(maxsize=16)
def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # WAL: readers never block the one writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    create_tables(engine)
    return engine
