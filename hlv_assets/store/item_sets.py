"""Registered item sets in the results store: a streaming import in one transaction, versions kept as history.

An item set is a name (a slug) and its items in the `item` table. The current version's items are stored
under `item.item_set = <name>`; registering a set that exists is refused unless `replace=True`, which makes
a new version and keeps the old one's items under `<name>@<version>` (history, never deleted). The
registry of versions is the `item_set_version` table. An import reads the file line by line, inserts the
valid items in batches inside one transaction, checks duplicate ids in SQL, and commits only when the
whole file is valid: a bad file writes nothing and raises ItemsValidationError naming every bad line.
"""

from __future__ import annotations

import weakref
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import JSON, Column, Index, UniqueConstraint, func, insert, select, text, update
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Field, Session, SQLModel

from hlv_assets.lib.items_import import (
    ImportSummary,
    ItemReader,
    check_set_name,
    file_sha256,
)
from hlv_assets.lib.validation import DataFormatError
from hlv_assets.store.db import create_tables
from hlv_assets.store.models import Item, utcnow

BATCH_SIZE = 1000


class ItemSetVersion(SQLModel, table=True):
    """One registered version of an item set (the current one has `current`)."""

    __tablename__ = "item_set_version"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_item_set_version"),
                      Index("ix_item_set_version_name_current", "name", "current"))

    pk: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    version: int
    storage_key: str  # `item.item_set` of its items: the name while current, `<name>@<version>` after
    current: bool = True
    n_items: int = 0
    has_counts: bool = False
    has_hjd: bool = False
    has_explanations: bool = False
    content_sha256: str = ""
    source_sha256: str = ""
    info: dict = Field(default_factory=dict, sa_column=Column(JSON))  # format, adapter, path, maxima
    created_at: datetime = Field(default_factory=utcnow)
    replaced_at: datetime | None = None


class ItemSetExists(ValueError):
    """The name is taken by a set with other content and `replace` was not asked for."""


@dataclass
class ImportResult:
    version: ItemSetVersion
    summary: ImportSummary
    changed: bool  # False: the file holds what the current version holds; nothing was written


_READY: weakref.WeakSet = weakref.WeakSet()  # engines whose tables exist (not ids: an id is reused)


def ensure_tables(engine: Engine) -> None:
    """Create this module's table (and `item`) where missing: `get_engine` only creates the tables of
    `hlv_assets.store.models`."""
    if engine not in _READY:
        create_tables(engine, tables=[Item.__table__, ItemSetVersion.__table__])
        _READY.add(engine)


def _lock(conn: Connection, name: str) -> None:
    """One importer per set name: a transaction-scoped advisory lock on PostgreSQL (SQLite serialises
    writers itself, and the unique (name, version) constraint catches a lost race)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(f"item_set|{name}".encode()) - 2**31})


def current(engine: Engine, name: str) -> ItemSetVersion | None:
    ensure_tables(engine)
    with Session(engine) as session:
        q = select(ItemSetVersion).where(ItemSetVersion.name == name, ItemSetVersion.current == True)  # noqa: E712
        return session.scalars(q).first()


def _current(conn: Connection, name: str):
    q = select(ItemSetVersion.__table__).where(ItemSetVersion.name == name, ItemSetVersion.current == True)  # noqa: E712
    return conn.execute(q).mappings().first()


def versions(engine: Engine, name: str | None = None, current_only: bool = False) -> list[ItemSetVersion]:
    """Registered versions, by name then newest first."""
    ensure_tables(engine)
    with Session(engine) as session:
        q = select(ItemSetVersion)
        if name is not None:
            q = q.where(ItemSetVersion.name == name)
        if current_only:
            q = q.where(ItemSetVersion.current == True)  # noqa: E712
        q = q.order_by(ItemSetVersion.name, ItemSetVersion.version.desc())
        return list(session.scalars(q))


def import_item_set(engine: Engine, name: str, path: str | Path, *, fmt: str | None = None,
                    adapter: str | None = None, replace: bool = False, max_errors: int = 50,
                    allow_extra_fields: bool = False, batch_size: int = BATCH_SIZE) -> ImportResult:
    """Validate `path` and register its items as set `name` in one transaction (see the module docstring).

    Raises ItemsValidationError (nothing written) or ItemSetExists. A file identical in content to the
    current version changes nothing (`changed=False`).
    """
    check_set_name(name)
    ensure_tables(engine)
    reader = ItemReader(path, fmt, adapter, max_errors=max_errors, allow_extra_fields=allow_extra_fields)
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            _lock(conn, name)
            old = _current(conn, name)
            now = utcnow()
            if old is not None:  # the old version becomes history first; a rollback undoes it
                history = f"{name}@{old['version']}"
                conn.execute(update(Item.__table__).where(Item.item_set == name).values(item_set=history))
            batch: list[dict] = []
            for record in reader:  # every line is validated; valid items are written even after an error,
                batch.append({"item_set": name, "uid": record.uid, "premise": record.premise,  # so that
                              "hypothesis": record.hypothesis, "payload": record.payload()})  # duplicates
                if len(batch) >= batch_size:  # are reported too (the transaction is rolled back)
                    conn.execute(insert(Item.__table__), batch)
                    batch.clear()
            if batch:
                conn.execute(insert(Item.__table__), batch)
            _report_duplicates(conn, name, reader)
            reader.raise_if_errors()
            summary = reader.summary()
            if old is not None and old["content_sha256"] == summary.content_sha256:
                trans.rollback()
                return ImportResult(_as_version(old), summary, changed=False)
            if old is not None and not replace:
                raise ItemSetExists(
                    f"item set {name!r} exists (version {old['version']}, {old['n_items']} items) with other "
                    "content: pass --replace to make a new version (the old one is kept as history)")
            version = 1 + (conn.execute(select(func.max(ItemSetVersion.version))
                                        .where(ItemSetVersion.name == name)).scalar() or 0)
            if old is not None:
                conn.execute(update(ItemSetVersion.__table__).where(ItemSetVersion.pk == old["pk"])
                             .values(current=False, replaced_at=now, storage_key=history))
            row = dict(name=name, version=version, storage_key=name, current=True, n_items=summary.n_items,
                       has_counts=summary.has_counts, has_hjd=summary.has_hjd,
                       has_explanations=summary.has_explanations, content_sha256=summary.content_sha256,
                       source_sha256=file_sha256(path), created_at=now,
                       info={"format": summary.format, "adapter": summary.adapter, "path": str(path),
                             "has_labels": summary.has_labels, "max_label_total": summary.max_label_total,
                             "max_explanations": summary.max_explanations})
            conn.execute(insert(ItemSetVersion.__table__).values(**row))
            trans.commit()
        except BaseException:
            if trans.is_active:
                trans.rollback()
            raise
    return ImportResult(current(engine, name), summary, changed=True)


def validate_file(path: str | Path, *, fmt: str | None = None, adapter: str | None = None,
                  max_errors: int = 50, allow_extra_fields: bool = False) -> ImportSummary:
    """Check a file without writing anything (duplicate ids included, in memory): `hlv items add --check`."""
    reader = ItemReader(path, fmt, adapter, max_errors=max_errors, allow_extra_fields=allow_extra_fields)
    seen: dict[str, int] = {}
    for record in reader:
        first = seen.setdefault(record.uid, record.line)
        if first != record.line:
            reader.add_error(DataFormatError(reader.path, record.line, "id",
                                             f"duplicate id {record.uid!r} (first on line {first})"))
    reader.raise_if_errors()
    return reader.summary()


def _report_duplicates(conn: Connection, key: str, reader: ItemReader) -> None:
    """Duplicate uids among the written rows (in SQL: memory stays flat), each repeat named with its line
    and the line it repeats."""
    dup_uids = [r[0] for r in conn.execute(
        select(Item.uid).where(Item.item_set == key).group_by(Item.uid).having(func.count() > 1)
        .limit(reader.max_errors))]
    if not dup_uids:
        return
    rows = conn.execute(select(Item.uid, Item.payload).where(Item.item_set == key, Item.uid.in_(dup_uids))
                        .order_by(Item.pk)).all()
    first: dict[str, int] = {}
    for uid, payload in rows:
        line = int(payload["line"])
        if uid not in first:
            first[uid] = line
        elif payload.get("id_given"):
            reader.add_error(DataFormatError(reader.path, line, "id",
                                             f"duplicate id {uid!r} (first on line {first[uid]})"))
        else:
            reader.add_error(DataFormatError(reader.path, line, "premise+hypothesis",
                                             f"the same item as line {first[uid]} (default id {uid!r})"))


def _as_version(mapping) -> ItemSetVersion:
    return ItemSetVersion(**dict(mapping))


ITEM_COLUMNS = ["item_index", "uid", "premise", "hypothesis", "counts", "labels", "hjd", "human_explanations"]


def load_items(engine: Engine, name: str, storage_key: str | None = None, limit: int | None = None) -> pd.DataFrame:
    """The items of a set's current version (or of `storage_key`) in file order, one row per item:
    item_index, uid, premise, hypothesis, counts, labels, hjd (None where the set has none),
    human_explanations ([text, letter] pairs)."""
    ensure_tables(engine)
    key = storage_key or name
    q = select(Item.uid, Item.premise, Item.hypothesis, Item.payload).where(Item.item_set == key).order_by(Item.pk)
    if limit is not None:
        q = q.limit(limit)
    rows = []
    with engine.connect() as conn:
        for uid, premise, hypothesis, payload in conn.execute(q):
            rows.append({"item_index": int(payload["index"]), "uid": uid, "premise": premise,
                         "hypothesis": hypothesis, "counts": payload.get("counts"), "labels": payload.get("labels"),
                         "hjd": payload.get("hjd"), "human_explanations": payload.get("explanations", [])})
    return pd.DataFrame(rows, columns=ITEM_COLUMNS)
