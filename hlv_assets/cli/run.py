"""`hlv run`: materialize steps against the persistent Dagster instance in one process, with progress output.

Each step is one run of the implicit asset job (`__ASSET_JOB`, the job an asset backfill launches), tagged
with the step, the profile and the invocation; `launch_step` is the single place a step is started.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import dagster as dg

from hlv_assets import definitions
from hlv_assets.cli.stale_runs import PID_TAG, process_tag, reap_dead_runs
from hlv_assets.defs import jobs, partition_sync
from hlv_assets.defs.check_gate import gate_tags
from hlv_assets.defs.jobs import INVOCATION_TAG, JOB_TAG, PROFILE_TAG, STEP_TAG, Step, main_job_name
from hlv_assets.defs.partitions import display_partition, explanation_partitions, parse_partition
from hlv_assets.defs.settings import run_tags as settings_run_tags
from hlv_assets.lib.errors import HLVError
from hlv_assets.lib.paths import REPO_ROOT, output_dir
from hlv_assets.lib.profiles import current_profile_name
from hlv_assets.lib.training_plan import check_start_heads, unconfigured_message
from hlv_assets.llm.registry import registry_state

__all__ = ["Step", "ensure_dagster_home", "expand", "launch_step", "load_definitions", "run_steps"]


class SelectionError(HLVError):
    """An asset or partition `hlv run` cannot build: not configured, unknown, or not offered."""

    exit_code = 2


def ensure_dagster_home() -> Path:
    """`DAGSTER_HOME`, defaulting to data/dagster with the local template (SQLite instance storage)."""
    home = Path(os.environ.get("DAGSTER_HOME") or output_dir() / "dagster")
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text((REPO_ROOT / "deploy" / "dagster.local.yaml").read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    return home


#: the assets whose config takes `n_items` (`hlv run --items N`)
JUDGE_ASSETS = ("mjd", "item_set_mjd")
#: the run log on the console: silent (a failed step prints its message; progress goes to stderr), and with
#: `--debug` warnings and errors with their stack traces
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
VERBOSE = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def load_definitions():
    return definitions.defs() if callable(definitions.defs) else definitions.defs


def _dynamic_names(pdef) -> list[tuple[str | None, str]]:
    """(dimension name or None, dynamic partitions definition name) of a partitions definition."""
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        return [(d.name, d.partitions_def.name) for d in pdef.partitions_defs
                if isinstance(d.partitions_def, dg.DynamicPartitionsDefinition)]
    return [(None, pdef.name)] if isinstance(pdef, dg.DynamicPartitionsDefinition) else []


def _allowed(pdef, key, registry) -> bool:
    """Whether every dynamic part of `key` names only LLMs that may do its work now."""
    for dim, name in _dynamic_names(pdef):
        part = key.keys_by_dimension[dim] if dim else key
        if not partition_sync.key_allowed(name, part, registry):
            return False
    return True


def partitions_of(defs, instance, asset: str, registry=None) -> list[str] | None:
    """The partition keys of an asset that can run now, in CLI form (None when unpartitioned). Keys kept only
    for their history (a retired LLM's) are left out."""
    pdef = defs.resolve_asset_graph().get(dg.AssetKey(asset)).partitions_def
    if pdef is None:
        return None
    registry = registry_state(partition_sync.engine_now()) if registry is None else registry
    keys = pdef.get_partition_keys(dynamic_partitions_store=instance)
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        keys = [pdef.get_partition_key_from_str(k) for k in keys]
    return [display_partition(k, pdef) for k in keys if _allowed(pdef, k, registry)]


def check_partition(defs, instance, asset: str, partition: str, registry=None):
    """The Dagster key of `partition` for `asset`, or a SelectionError in one line saying why it cannot run."""
    pdef = defs.resolve_asset_graph().get(dg.AssetKey(asset)).partitions_def
    if pdef is None:
        raise SelectionError(f"{asset} is not partitioned: drop --partition")
    try:
        key = parse_partition(partition, pdef)
    except (ValueError, KeyError) as exc:
        raise SelectionError(f"{asset}: {exc}") from None
    registry = registry_state(partition_sync.engine_now()) if registry is None else registry
    for dim, name in _dynamic_names(pdef):
        part = key.keys_by_dimension[dim] if dim else key
        have = instance.get_dynamic_partitions(name)
        if part not in have or not partition_sync.key_allowed(name, part, registry):
            offered = [k for k in have if partition_sync.key_allowed(name, k, registry)]
            raise SelectionError(f"{asset}[{partition}]: {partition_sync.why_not(name, part, registry, offered)}")
    if str(key) not in set(pdef.get_partition_keys(dynamic_partitions_store=instance)):
        raise SelectionError(f"{asset} has no partition {partition!r}; e.g. "
                             f"{', '.join(partitions_of(defs, instance, asset, registry)[:4])}")
    return key


def expand(defs, instance, assets: Sequence[str], partition: str | None = None,
           all_partitions: bool = False) -> list[Step]:
    """Steps for the selected assets in dependency order. A partitioned asset needs `partition`, except
    static ones (every partition) or with `all_partitions` (every key that can run now)."""
    graph = defs.resolve_asset_graph()
    check_start_heads(assets, current_profile_name())  # a user checkpoint whose head cannot be mapped: one line
    for name in assets:
        if not graph.has(dg.AssetKey(name)):
            message = unconfigured_message(name)
            if message is None:
                known = ", ".join(sorted(k.to_user_string() for k in graph.get_all_asset_keys()))
                message = f"unknown asset {name}; known: {known}"
            raise SelectionError(message)
    wanted = {dg.AssetKey(a) for a in assets}
    ordered = [k for level in graph.toposorted_asset_keys_by_level for k in sorted(level) if k in wanted]
    registry = registry_state(partition_sync.engine_now())
    steps = []
    for key in ordered:
        name = key.to_user_string()
        pdef = graph.get(key).partitions_def
        if pdef is None:
            steps.append(Step(name))
        elif partition is not None:
            pkey = check_partition(defs, instance, name, partition, registry)
            steps.append(Step(name, display_partition(pkey, pdef)))  # one form from here on: `<llm>/<other>`
        elif all_partitions or not _dynamic_names(pdef):
            steps.extend(Step(name, k) for k in partitions_of(defs, instance, name, registry))
        else:
            keys = partitions_of(defs, instance, name, registry)
            raise SelectionError(f"{name} is partitioned by LLM: give --partition (e.g. "
                                 f"{keys[0] if keys else 'SLUG'}) or --all-partitions")
    return steps


def run_tags(step: Step, invocation: str, job: str | None = None) -> dict[str, str]:
    """The tags of one step's run: step, profile, the invocation it belongs to, the job it is part of."""
    tags = {**settings_run_tags(), STEP_TAG: step.label(), PROFILE_TAG: current_profile_name(),
            INVOCATION_TAG: invocation, PID_TAG: process_tag()}
    if job:
        tags[JOB_TAG] = job
    return tags


def launch_step(job: dg.JobDefinition, step: Step, *, graph, instance, tags: dict[str, str], force: bool = False,
                judge_items: int | None = None, debug: bool = False):
    """Start one step: a run of the implicit asset job for one asset (and partition). The single place a step
    is launched: it obeys the rule automation obeys, refusing (BlockedByFailedCheck, one line per failed
    input) to build on an input partition whose latest blocking check failed, unless `force` (then tagged
    `hlv/forced` and recorded on every row the run writes). Checked right before the step runs, so a rerun of
    the failed input earlier in the same invocation clears it."""
    key = dg.AssetKey(step.asset)
    partition = parse_partition(step.partition, graph.get(key).partitions_def) if step.partition else None
    tags = {**tags, **gate_tags(instance, graph, key, partition, force=force)}
    run_config = dict(QUIET if not debug else VERBOSE)
    if judge_items and step.asset in JUDGE_ASSETS:  # a trial: the first N items (JudgeConfig.n_items)
        run_config["ops"] = {step.asset: {"config": {"n_items": judge_items}}}
    return job.execute_in_process(instance=instance, asset_selection=[key], partition_key=partition,
                                  raise_on_error=False, tags=tags, run_config=run_config)


def run_steps(steps: Iterable[Step], *, instance=None, defs=None, resources: dict | None = None,
              raise_on_error: bool = True, out=sys.stdout, invocation: str | None = None,
              job_name: str | None = None, force: bool = False,
              judge_items: int | None = None, debug: bool = False) -> list[tuple[Step, bool, float]]:
    """Materialize each step in turn; prints one progress line per step. Returns (step, success, seconds).
    A failed step prints its error's message (its traceback too when `debug`). `resources` replaces the
    definitions' resources (tests)."""
    defs = defs or load_definitions()
    if resources is not None:
        defs = dg.Definitions(assets=list(defs.assets or []), asset_checks=list(defs.asset_checks or []),
                              resources={**(defs.resources or {}), **resources})
    instance = instance or dg.DagsterInstance.get()
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    invocation = invocation or uuid.uuid4().hex[:12]
    for run_id in reap_dead_runs(instance):
        print(f"run {run_id} of a killed hlv process marked failed; its pool slots are free again", file=out)
    steps = list(steps)
    report = []
    for i, step in enumerate(steps, start=1):
        started = time.perf_counter()
        print(f"[{i}/{len(steps)}] {step.label()} ...", file=out, flush=True)
        result = launch_step(job, step, graph=graph, instance=instance, tags=run_tags(step, invocation, job_name),
                             force=force, judge_items=judge_items, debug=debug)
        seconds = time.perf_counter() - started
        ok = result.success
        print(f"[{i}/{len(steps)}] {step.label()} {'ok' if ok else 'FAILED'} in {seconds:.1f}s", file=out, flush=True)
        report.append((step, ok, seconds))
        if not ok:
            for event in result.all_events:
                if event.is_step_failure and event.step_failure_data.error:
                    error = event.step_failure_data.error
                    print(error.to_string() if debug else failure_line(error), file=out)
            if raise_on_error:
                raise SystemExit(f"{step.label()} failed (run {result.run_id})")
    return report


def failure_line(error) -> str:
    """The message of a step failure's innermost cause (Dagster wraps the asset's own error), one line."""
    while error.cause is not None:
        error = error.cause
    message = (error.message or "").strip().splitlines()
    return message[-1] if message else error.cls_name or "the step failed"


def run_main_job(instance, defs, profile_name: str | None = None, out=sys.stdout, **kwargs):
    """The profile's main job (`defs.jobs.main_plan`, the steps the Jobs page's `main_<profile>` submits)."""
    steps = jobs.main_plan(profile_name)
    # the explanation sources the planned generators will add, added now so that every step's key exists
    partition_sync.add_missing(instance, explanation_partitions.name, jobs.plan_sources(steps))
    invocation = kwargs.pop("invocation", None) or uuid.uuid4().hex[:12]
    job = main_job_name(profile_name)
    print(f"{job}: {len(steps)} steps, every run tagged hlv/invocation={invocation}", file=out, flush=True)
    return run_steps(steps, instance=instance, defs=defs, out=out, job_name=job, invocation=invocation, **kwargs)
