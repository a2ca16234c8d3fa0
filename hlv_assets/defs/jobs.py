"""Jobs: the profile's main job (what `make run` / `hlv run` does) and the registry refresh.

The main job spans assets with five kinds of partitioning (unpartitioned raw data, static baselines, dynamic
generators, explanation sources, judge x explanations). Dagster 1.13 refuses an asset job whose assets have
different partitions definitions ("Selected assets must have the same partitions definitions"), and a run
targets one partition key. The Dagster-native unit for "these partitions of these assets, in dependency
order, grouped" is an asset backfill over an exact asset-partition subset. So:

* `main_plan(profile)` is the one definition of the work: the ordered (asset, partition) steps.
* `main_<profile>` (Jobs page) is a one-op job that syncs the partitions the plan needs and submits that
  plan as one asset backfill (tags `hlv/profile`, `hlv/invocation` = the launching run's id); the daemon of
  `hlv ui` / `dagster dev` runs it, every run carrying the backfill's tags.
* `hlv run` (no daemon needed) runs the same plan step by step, in process, through the same implicit asset
  job (`__ASSET_JOB`) a backfill uses, every run tagged `hlv/profile`, `hlv/invocation`, `hlv/job`.
* `registry_refresh`: YAML defaults -> registry -> dynamic partitions (`defs/partition_sync.py`), on the
  `registry_refresh_schedule` of `defs/schedules.py`.
"""

# no `from __future__ import annotations`: Dagster reads the op context annotation at definition time
import time
from dataclasses import dataclass

import dagster as dg
from dagster._check import CheckError
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.utils import make_new_backfill_id

from hlv_assets.defs import partition_sync
from hlv_assets.defs.partitions import explanation_partitions, parse_partition
from hlv_assets.lib.profiles import current_profile_name, get_profile
from hlv_assets.lib.selection import SET_NAMES

RAW_ASSETS = ("chaosnli_mnli", "varierr_nli", "hlv_items", "chaos_dev", "chaos_test", "anli_test",
              "released_generations")
BASELINES = ("chaosnli", "varierr", "mnli", "mnli-onehot", "uniform")
EMBEDDED = "smollm2-135m"
REGISTRY_JOB = "registry_refresh"
#: Tags every run of one `hlv run` / one main-job launch carries.
PROFILE_TAG, INVOCATION_TAG, JOB_TAG, STEP_TAG = "hlv/profile", "hlv/invocation", "hlv/job", "hlv/step"


@dataclass(frozen=True)
class Step:
    """One materialization: an asset and, when partitioned, its key in CLI form (`<llm>/<explanations>`)."""

    asset: str
    partition: str | None = None

    def label(self) -> str:
        return f"{self.asset}[{self.partition}]" if self.partition else self.asset


def main_job_name(profile_name: str | None = None) -> str:
    return f"main_{get_profile(profile_name).name}"


def main_plan(profile_name: str | None = None) -> list[Step]:
    """What `make run` materializes: raw data, baselines and their table, the released and embedded
    generators' explanation sets, the embedded judge's MJDs on the profile's sources, fine-tunes, analyses."""
    profile = get_profile(profile_name)
    steps = [Step(a) for a in RAW_ASSETS]
    steps += [Step("baseline_distributions", b) for b in BASELINES]
    steps.append(Step("distribution_comparison"))
    generators = [g for g in profile.main_sources if "." in g]
    steps += [Step("llm_generations", g) for g in sorted({s.split(".")[0] for s in generators} | {EMBEDDED})]
    # the embedded generator's set is built (and exportable) but not judged by default: its long answers make
    # the judging prompts ~2x longer than the human ones (94 s on 2 cores); `hlv run mjd --partition ...` does it
    steps += [Step("explanation_sets", s) for s in [*profile.main_sources, f"{EMBEDDED}.lf-first"]]
    steps += [Step("mjd", f"{EMBEDDED}/{s}") for s in profile.main_sources]
    steps += [Step("mjd_comparison", f"{EMBEDDED}/{s}") for s in profile.main_sources]
    steps += [Step("finetune_minilm_reference"), Step("finetune_minilm_baseline", "chaosnli"),
              Step("finetune_minilm", f"{EMBEDDED}/{profile.main_sources[-1]}")]
    steps += [Step("replacement_curves", EMBEDDED), Step("preference_selection", EMBEDDED),
              Step("explanation_variability"), Step("ternary_plots"), Step("paper_report")]
    return steps


def plan_sources(steps: list[Step]) -> list[str]:
    """The explanation sources of the planned generators (`<gen>.<set>`): `llm_generations` adds them when it
    runs, a backfill needs them to exist when it is submitted."""
    generators = [s.partition for s in steps if s.asset == "llm_generations" and s.partition]
    return [f"{g}.{name}" for g in generators for name in SET_NAMES]


def plan_subset(steps: list[Step], asset_graph):
    """The plan as an exact asset-partition subset (what a backfill targets)."""
    pairs = set()
    for step in steps:
        key = dg.AssetKey(step.asset)
        pdef = asset_graph.get(key).partitions_def
        partition = parse_partition(step.partition, pdef) if step.partition else None
        pairs.add(AssetKeyPartitionKey(key, partition))
    return AssetGraphSubset.from_asset_partition_set(pairs, asset_graph)


def submit_main_backfill(instance: dg.DagsterInstance, asset_graph, profile_name: str, invocation: str) -> str:
    """Sync the partitions, then submit the profile's plan as one asset backfill; returns its id."""
    steps = main_plan(profile_name)
    partition_sync.sync_partitions(instance, asset_graph=asset_graph)
    partition_sync.add_missing(instance, explanation_partitions.name, plan_sources(steps))
    backfill_id = make_new_backfill_id()
    tags = {PROFILE_TAG: profile_name, INVOCATION_TAG: invocation, JOB_TAG: main_job_name(profile_name)}
    instance.add_backfill(PartitionBackfill.from_asset_graph_subset(
        backfill_id=backfill_id, backfill_timestamp=time.time(), tags=tags, dynamic_partitions_store=instance,
        asset_graph_subset=plan_subset(steps, asset_graph), title=f"{main_job_name(profile_name)}",
        description=f"the {profile_name} main job: {len(steps)} steps", run_config=None,
    ))
    return backfill_id


def _asset_graph(context):
    """The code location's asset graph (set on runs launched from a code location; not in execute_in_process)."""
    try:
        return context.repository_def.asset_graph
    except CheckError:  # "No repository definition was set on the step context"
        return None


def main_job(profile_name: str | None = None) -> dg.JobDefinition:
    name = main_job_name(profile_name)
    profile = get_profile(profile_name).name
    steps = main_plan(profile)

    @dg.op(name=f"launch_{name}", description="submit the main job's steps as one asset backfill")
    def launch(context: dg.OpExecutionContext) -> None:
        graph = _asset_graph(context)
        if graph is None:
            raise dg.Failure(f"{name} needs its code location's asset graph: launch it from the UI (Jobs page) "
                             "or run `hlv run`")
        backfill_id = submit_main_backfill(context.instance, graph, profile, invocation=context.run_id)
        context.log.info(f"submitted backfill {backfill_id}: {len(steps)} steps of the {profile} main job "
                         "(Overview > Backfills)")

    @dg.job(name=name, tags={PROFILE_TAG: profile},
            description=f"The {profile} main job (`make run`, `hlv run`): {len(steps)} steps submitted as one "
            "asset backfill: " + ", ".join(s.label() for s in steps))
    def _job():
        launch()

    return _job


@dg.op(description="YAML defaults -> LLM registry -> generators / judges / explanation partitions")
def refresh_registry_partitions(context: dg.OpExecutionContext) -> None:
    plan = partition_sync.sync_partitions(context.instance, asset_graph=_asset_graph(context))
    context.log.info(plan.summary())
    for name, keys in plan.kept.items():
        if keys:
            context.log.info(f"kept {name} partitions {keys}: not allowed now, but materialized before")


@dg.job(name=REGISTRY_JOB, description="Sync llms.yaml into the registry and the registry into the dynamic "
        "partitions (adds and removes keys; see defs/partition_sync.py)")
def registry_refresh():
    refresh_registry_partitions()


@dg.definitions
def jobs() -> dg.Definitions:
    return dg.Definitions(jobs=[main_job(current_profile_name()), registry_refresh])
