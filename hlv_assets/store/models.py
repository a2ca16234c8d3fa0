"""SQLModel tables of the results store. Every result row carries its lineage."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Lineage(SQLModel):
    """Who wrote a row: asset partition, run, code version, profile, input hashes, when."""

    asset_key: str = Field(index=True)
    partition_key: str = Field(default="", index=True)
    profile: str = Field(default="demo", index=True)
    run_id: str = ""
    code_version: str = ""
    inputs_sha256: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    current: bool = Field(default=True, index=True)
    replaced_at: datetime | None = None


class ResultRow(Lineage, table=True):
    """One row of a result table (distribution comparison, fine-tuning comparison, ANLI OOD, analyses)."""

    __tablename__ = "result_row"
    __table_args__ = (Index("ix_result_row_table_current", "table_name", "current"),)

    pk: int | None = Field(default=None, primary_key=True)
    row_id: str = Field(index=True)  # stable id from the natural key; `hlv audit <id>`
    table_name: str = Field(index=True)
    items_sha256: str = ""
    data: dict = Field(default_factory=dict, sa_column=Column(JSON))


class DistributionRow(Lineage, table=True):
    """One item's label distribution in one distribution-asset partition."""

    __tablename__ = "distribution"

    pk: int | None = Field(default=None, primary_key=True)
    item_set: str = Field(default="hlv341", index=True)
    uid: str = Field(index=True)
    p_e: float
    p_n: float
    p_c: float


class Item(SQLModel, table=True):
    """An NLI item of a registered item set (the 341 and users' own sets)."""

    __tablename__ = "item"

    pk: int | None = Field(default=None, primary_key=True)
    item_set: str = Field(index=True)
    uid: str = Field(index=True)
    premise: str = Field(sa_column=Column(Text))
    hypothesis: str = Field(sa_column=Column(Text))
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON))


class LLMCall(SQLModel, table=True):
    """A successful LLM call, content-addressed (backend, model, revision, prompt, parameters)."""

    __tablename__ = "llm_call"

    key: str = Field(primary_key=True)
    backend: str = ""
    model_id: str = ""
    operation: str = ""
    record: dict = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class LLMEntry(SQLModel, table=True):
    """The LLM registry: what `hlv llm add|list|retire` edits and the `llm` partitions follow."""

    __tablename__ = "llm_registry"

    slug: str = Field(primary_key=True)
    spec: dict = Field(default_factory=dict, sa_column=Column(JSON))
    active: bool = True
    source: str = "yaml"  # yaml (defaults file) or cli (set by a user: wins afterwards)
    updated_at: datetime = Field(default_factory=utcnow)


class Artifact(Lineage, table=True):
    """A keyed JSON record owned by an asset partition (explanation sets, judgment scores, checkpoints)."""

    __tablename__ = "artifact"
    __table_args__ = (Index("ix_artifact_kind_current", "kind", "current"),)

    pk: int | None = Field(default=None, primary_key=True)
    kind: str = Field(index=True)
    key: str = Field(index=True)
    data: dict = Field(default_factory=dict, sa_column=Column(JSON))
