"""Engine and sessions of the results store: `HLV_DB_URL`, else SQLite at `data/hlv.db`."""

from __future__ import annotations

import os
from functools import lru_cache

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, create_engine

from hlv_assets.lib.paths import output_dir
from hlv_assets.store import models  # noqa: F401  (registers the tables)


def default_url() -> str:
    url = os.environ.get("HLV_DB_URL")
    if url:
        return url
    path = output_dir() / "hlv.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def redact(url: str) -> str:
    """The URL without its password, for logs and metadata."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def get_engine(url: str | None = None) -> Engine:
    """The engine of `url` (default: `HLV_DB_URL` / `HLV_HOME` as they are now), one per URL per process."""
    return _engine(url or default_url())


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
    SQLModel.metadata.create_all(engine)
    return engine
