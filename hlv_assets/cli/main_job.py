"""The main job as `hlv run` sees it: the plan of `defs/jobs.py` (the same definition the Jobs page launches)
and the registry -> partitions sync that precedes every run."""

from __future__ import annotations

from hlv_assets.cli.dry_run import plan_steps
from hlv_assets.defs import jobs, partition_sync
from hlv_assets.defs.jobs import EMBEDDED, Step, main_job_name  # noqa: F401  (the names callers use)
from hlv_assets.defs.partitions import explanation_partitions


def main_steps(instance=None, profile_name: str | None = None) -> list[Step]:
    """The steps of the profile's main job (`defs.jobs.main_plan`), in order."""
    return jobs.main_plan(profile_name)


def sync_partitions(instance, engine=None, asset_graph=None) -> partition_sync.SyncPlan:
    """YAML defaults -> registry -> dynamic partitions (adds and removes keys, see `defs/partition_sync.py`)."""
    return partition_sync.sync_partitions(instance, engine, asset_graph=asset_graph)


def prepare_plan(instance, steps: list[Step]) -> None:
    """The explanation sources the planned generators will add, added now so every step's key exists."""
    partition_sync.add_missing(instance, explanation_partitions.name, jobs.plan_sources(steps))


def dry_run(steps: list[Step], instance) -> str:
    """The LLM calls a run would make (cache misses), with estimated tokens and cost; nothing is called."""
    return plan_steps(steps, instance)
