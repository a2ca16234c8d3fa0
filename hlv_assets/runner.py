"""Materialize assets against the persistent Dagster instance in one process, with progress output."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hlv_assets.lib.paths import REPO_ROOT, output_dir


def ensure_dagster_home() -> Path:
    """`DAGSTER_HOME`, defaulting to data/dagster with the local template (SQLite instance storage)."""
    home = Path(os.environ.get("DAGSTER_HOME") or output_dir() / "dagster")
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text((REPO_ROOT / "deploy" / "dagster.local.yaml").read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    return home


#: Dagster's console logger at WARNING: `hlv run` prints one progress line per step instead.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class Step:
    asset: str
    partition: str | None = None  # CLI form; `<llm>/<explanations>` for judgments

    def label(self) -> str:
        return f"{self.asset}[{self.partition}]" if self.partition else self.asset


def load_definitions():
    from hlv_assets.definitions import defs

    return defs() if callable(defs) else defs


def partitions_of(defs, instance, asset: str) -> list[str] | None:
    """All partition keys of an asset in CLI form (None when unpartitioned)."""
    import dagster as dg

    from hlv_assets.defs.partitions import display_partition

    node = defs.resolve_asset_graph().get(dg.AssetKey(asset))
    pdef = node.partitions_def
    if pdef is None:
        return None
    keys = pdef.get_partition_keys(dynamic_partitions_store=instance)
    return [display_partition(k) for k in keys]


def expand(defs, instance, assets: Sequence[str], partition: str | None = None,
           all_partitions: bool = False) -> list[Step]:
    """Steps for the selected assets in dependency order. A partitioned asset needs `partition`, except
    static ones (every partition) or with `all_partitions` (every known key, dynamic ones included)."""
    import dagster as dg

    graph = defs.resolve_asset_graph()
    wanted = {dg.AssetKey(a) for a in assets}
    unknown = [a for a in assets if not graph.has(dg.AssetKey(a))]
    if unknown:
        known = ", ".join(sorted(k.to_user_string() for k in graph.get_all_asset_keys()))
        raise SystemExit(f"unknown asset(s) {', '.join(unknown)}; known: {known}")
    ordered = [k for level in graph.toposorted_asset_keys_by_level for k in sorted(level) if k in wanted]
    steps = []
    for key in ordered:
        name = key.to_user_string()
        keys = partitions_of(defs, instance, name)
        if keys is None:
            steps.append(Step(name))
        elif partition is not None:
            steps.append(Step(name, partition))
        elif all_partitions or not _is_dynamic(graph.get(key).partitions_def):
            steps.extend(Step(name, k) for k in keys)
        else:
            raise SystemExit(f"{name} is partitioned by LLM: give --partition (e.g. {keys[0] if keys else 'SLUG'})"
                             " or --all-partitions")
    return steps


def _is_dynamic(pdef) -> bool:
    import dagster as dg

    if isinstance(pdef, dg.MultiPartitionsDefinition):
        return any(_is_dynamic(d.partitions_def) for d in pdef.partitions_defs)
    return isinstance(pdef, dg.DynamicPartitionsDefinition)


def run_steps(steps: Iterable[Step], *, instance=None, defs=None, resources: dict | None = None,
              raise_on_error: bool = True, out=sys.stdout) -> list[tuple[Step, bool, float]]:
    """Materialize each step in turn; prints one progress line per step. Returns (step, success, seconds)."""
    import dagster as dg

    from hlv_assets.defs.partitions import parse_partition
    from hlv_assets.defs.resources_defs import default_resources

    defs = defs or load_definitions()
    instance = instance or dg.DagsterInstance.get()
    resources = resources or default_resources()
    assets = list(defs.assets or [])
    checks = list(defs.asset_checks or [])
    steps = list(steps)
    report = []
    for i, step in enumerate(steps, start=1):
        started = time.perf_counter()
        print(f"[{i}/{len(steps)}] {step.label()} ...", file=out, flush=True)
        key = parse_partition(step.partition) if step.partition else None
        result = dg.materialize(
            [*assets, *checks], selection=dg.AssetSelection.assets(step.asset), partition_key=key,
            instance=instance, resources=resources, raise_on_error=False,
            tags={"hlv/step": step.label()}, run_config=QUIET,
        )
        seconds = time.perf_counter() - started
        ok = result.success
        print(f"[{i}/{len(steps)}] {step.label()} {'ok' if ok else 'FAILED'} in {seconds:.1f}s", file=out, flush=True)
        report.append((step, ok, seconds))
        if not ok:
            for event in result.all_events:
                if event.is_step_failure and event.step_failure_data.error:
                    print(event.step_failure_data.error.to_string(), file=out)
            if raise_on_error:
                raise SystemExit(f"{step.label()} failed (run {result.run_id})")
    return report
