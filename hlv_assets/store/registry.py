"""The LLM registry in the results store: YAML defaults fill in missing slugs, what a user set wins afterwards."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from hlv_assets.store.models import LLMEntry, utcnow


def sync_defaults(engine: Engine, specs: list[dict]) -> list[str]:
    """Add the default specs whose slug the store lacks; returns the added slugs. Never overwrites."""
    added = []
    for spec in specs:
        with Session(engine) as session:
            if session.get(LLMEntry, spec["slug"]) is not None:
                continue
            session.add(LLMEntry(slug=spec["slug"], spec=spec, active=spec.get("active", True), source="yaml"))
            try:
                session.commit()
                added.append(spec["slug"])
            except IntegrityError:  # another process added it first: theirs stands
                session.rollback()
    return added


def upsert(engine: Engine, spec: dict, source: str = "cli") -> None:
    with Session(engine) as session:
        session.merge(LLMEntry(slug=spec["slug"], spec=spec, active=spec.get("active", True), source=source,
                               updated_at=utcnow()))
        session.commit()


def set_active(engine: Engine, slug: str, active: bool) -> None:
    with Session(engine) as session:
        entry = session.get(LLMEntry, slug)
        if entry is None:
            raise KeyError(f"no LLM {slug!r} in the registry (hlv llm list)")
        entry.active = active
        entry.spec = {**entry.spec, "active": active}
        entry.source = "cli"
        entry.updated_at = utcnow()
        session.add(entry)
        session.commit()


def entries(engine: Engine, active_only: bool = False) -> list[LLMEntry]:
    with Session(engine) as session:
        q = select(LLMEntry).order_by(LLMEntry.slug)
        if active_only:
            q = q.where(LLMEntry.active == True)  # noqa: E712
        return list(session.exec(q))


def get(engine: Engine, slug: str) -> dict:
    with Session(engine) as session:
        entry = session.get(LLMEntry, slug)
        if entry is None:
            raise KeyError(f"no LLM {slug!r} in the registry (hlv llm list)")
        return dict(entry.spec)
