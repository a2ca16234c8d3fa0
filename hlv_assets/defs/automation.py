"""Automation: a new LLM refreshes everything, a retired one freezes, and no tick floods the run queue.

Picked up by `load_from_defs_folder`:

* `llm_registry_sensor` keeps the dynamic partitions equal to the registry (`defs/partition_sync.py`: adds
  and removes keys; `generators` = active LLMs that generate, `judges` = active LLMs with label logits), so
  `hlv llm add|retire` shows in the UI within `HLV_REGISTRY_SENSOR_SECONDS` (default 60). The YAML defaults
  (`llms.yaml`) are synced into the store on its first tick and by the `registry_refresh` schedule
  (`defs/schedules.py`, cron `HLV_REGISTRY_CRON`, default daily 04:00 UTC), which the Automation page shows.
* Registry-aware automation conditions for the assets keyed by LLM slugs (`generation_condition`,
  `explanation_condition`, `judgment_condition`): `RegistryAllows` keeps only partitions whose every LLM is
  active with the capability its role needs (a retired LLM's key kept for its history is never requested).
  `RequestCap` bounds how many asset partitions one tick may request (`HLV_AUTOMATION_MAX_PER_TICK`, default
  16); what it holds back stays pending (`eager()` remembers it) and is requested on later ticks.
  `new_partition_condition` (registered item sets) and `refresh_condition` (report, plots) cover what
  `eager()` does not: partitions that existed before the first evaluation, and unpartitioned assets over
  partitioned inputs of which some will never exist.
* `hlv_automation_sensor`, the `AutomationConditionSensorDefinition` evaluating every condition. The
  conditions above are plain Python reading the store, so it runs in the code server
  (`use_user_code_server=True`); its default status is `HLV_AUTOMATION_STATUS` (running unless `stopped`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import dagster as dg

from hlv_assets.defs import partition_sync
from hlv_assets.defs.partitions import explanation_partitions, item_set_source_partitions
from hlv_assets.llm.base import GENERATE, LABEL_LOGITS
from hlv_assets.llm.registry import registry_state

REGISTRY_SENSOR = "llm_registry_sensor"
AUTOMATION_SENSOR = "hlv_automation_sensor"
DEFAULT_REGISTRY_CRON = "0 4 * * *"
DEFAULT_MAX_PER_TICK = 16
#: The labels of the conditions defined here (the graph snapshot expands these, and shows Dagster's by label).
CONDITION_LABELS = frozenset({"eager_for_active_generators", "eager_for_active_sources",
                              "eager_for_active_judges_after_checks", "missing_and_never_requested",
                              "refresh_when_inputs_change"})


# ---- settings (read when used, so a test or a deployment can change them through the environment) --------
def _status(var: str, default: str = "running") -> dg.DefaultSensorStatus:
    value = os.environ.get(var, default).strip().lower()
    if value not in ("running", "stopped"):
        raise ValueError(f"{var}={value!r}: expected running or stopped")
    return dg.DefaultSensorStatus.RUNNING if value == "running" else dg.DefaultSensorStatus.STOPPED


def registry_cron() -> str:
    from dagster._utils.schedules import is_valid_cron_string

    cron = os.environ.get("HLV_REGISTRY_CRON", DEFAULT_REGISTRY_CRON)
    if not is_valid_cron_string(cron):
        raise ValueError(f"HLV_REGISTRY_CRON={cron!r} is not a cron string")
    return cron


def max_requests_per_tick() -> int:
    value = int(os.environ.get("HLV_AUTOMATION_MAX_PER_TICK", DEFAULT_MAX_PER_TICK))
    if value < 1:
        raise ValueError("HLV_AUTOMATION_MAX_PER_TICK must be at least 1")
    return value


#: Dynamic partitions whose keys are LLM slugs, and those whose keys are explanation sources
#: (`<generator>.<set>`, `none`, `human`; for registered item sets `<source>@<set>`).
SLUG_PARTITIONS = frozenset(partition_sync.ROLE_CAPABILITY)
SOURCE_PARTITIONS = frozenset({explanation_partitions.name, item_set_source_partitions.name})
source_generator = partition_sync.source_generator


def partition_allowed(dims, registry, capability: str | None, generated: set[str] | None = None) -> bool:
    """Whether automation may request a partition with these keys (`{"llm": slug, "source": source}`, either
    optional): the slug is active and has `capability`; the generator behind the source (if any) is active
    and, when `generated` is given, has generated (`<gen>` or `<gen>@<set>` in it): an explanation set reads
    its generator's stored answers, which no partition mapping declares."""
    slug = dims.get("llm")
    if slug is not None:
        entry = registry.get(slug)
        if entry is None or not entry.active or (capability and capability not in entry.capabilities):
            return False
    source = dims.get("source")
    if source is not None:
        generator = source_generator(source)
        if generator is not None:
            entry = registry.get(generator)
            if entry is None or not entry.active:
                return False
            if generated is not None:
                item_set = source.rpartition("@")[2] if "@" in source else None
                if (f"{generator}@{item_set}" if item_set else generator) not in generated:
                    return False
    return True


def generated_keys(instance: dg.DagsterInstance) -> set[str]:
    """Generators with materialized answers: `<gen>` (the 341) and `<gen>@<set>` (registered item sets)."""
    done = set(instance.get_materialized_partitions(dg.AssetKey("llm_generations")))
    for key in instance.get_materialized_partitions(dg.AssetKey("item_set_generations")):
        generator, _, item_set = key.partition("|")  # Dagster's string: dimensions sorted (generator, item_set)
        done.add(f"{generator}@{item_set}")
    return done


def _role(partitions_def) -> str | None:
    name = (
        getattr(partitions_def, "name", None)
        if isinstance(partitions_def, dg.DynamicPartitionsDefinition)
        else None
    )
    return "llm" if name in SLUG_PARTITIONS else "source" if name in SOURCE_PARTITIONS else None


def _dimensions(partitions_def, key: str) -> dict[str, str] | None:
    """The LLM-naming parts of a partition key by role (`llm`, `source`), or None if it names no LLM."""
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        mkey = (
            key if isinstance(key, dg.MultiPartitionKey) else partitions_def.get_partition_key_from_str(key)
        )
        by_name = mkey.keys_by_dimension
        dims = {_role(d.partitions_def): by_name[d.name] for d in partitions_def.partitions_defs}
    else:
        dims = {_role(partitions_def): key}
    dims.pop(None, None)
    return dims or None


class RegistryAllows(dg.AutomationCondition):
    """True for the partitions whose LLM slugs the registry allows automation to refresh (see
    `partition_allowed`); partitions naming no LLM (and unpartitioned assets) always pass.

    Plain Python reading the results store, so it needs an automation sensor with `use_user_code_server`.
    """

    def __init__(self, capability: str | None = None):
        self.capability = capability

    @property
    def name(self) -> str:
        return f"registry_allows({self.capability})" if self.capability else "registry_allows"

    @property
    def description(self) -> str:
        what = f" with {self.capability}" if self.capability else ""
        return f"every LLM the partition names is active in the registry{what} (and has generated)"

    @property
    def requires_cursor(self) -> bool:
        return False

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        candidates = context.candidate_subset
        if candidates.is_empty or not candidates.is_partitioned:
            return dg.AutomationResult(context, candidates)
        registry = registry_state(partition_sync.engine_now())
        generated = generated_keys(context.asset_graph_view.instance)
        keys = set()
        for key in candidates.expensively_compute_partition_keys():
            dims = _dimensions(context.partitions_def, key)
            if dims is None or partition_allowed(dims, registry, self.capability, generated):
                keys.add(key)
        return dg.AutomationResult(context, candidates.compute_intersection_with_partition_keys(keys))


class RequestCap(dg.AutomationCondition):
    """Its operand, limited so that one tick requests at most `limit` asset partitions in all (counting what
    assets evaluated earlier in the tick requested). Keys are kept in sorted order; the rest are not requested
    now and, since `eager()` stays true until a partition is handled, come on later ticks."""

    def __init__(self, operand: dg.AutomationCondition, limit: int | None = None):
        self.operand = operand
        self.limit = limit

    @property
    def name(self) -> str:
        return "request_cap"

    @property
    def description(self) -> str:
        limit = self.limit if self.limit is not None else "HLV_AUTOMATION_MAX_PER_TICK"
        return f"at most {limit} asset partitions requested per tick"

    @property
    def children(self) -> Sequence[dg.AutomationCondition]:
        return [self.operand]

    @property
    def requires_cursor(self) -> bool:
        return False

    async def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        child = await context.for_child_condition(
            self.operand, child_indices=[0], candidate_subset=context.candidate_subset
        ).evaluate_async()
        limit = self.limit if self.limit is not None else max_requests_per_tick()
        # no await from here to the return: the evaluator records this result before the next asset reads
        used = sum(
            subset.size
            for key, subset in context.request_subsets_by_key.items()
            if isinstance(key, dg.AssetKey) and key != context.key
        )
        remaining = max(limit - used, 0)
        true_subset = child.true_subset
        if true_subset.size > remaining:
            if true_subset.is_partitioned:
                keep = set(sorted(true_subset.expensively_compute_partition_keys())[:remaining])
                capped = true_subset.compute_intersection_with_partition_keys(keep)
            else:
                capped = context.get_empty_subset()
            context.log.info(
                f"{context.key.to_user_string()}: {true_subset.size - capped.size} of "
                f"{true_subset.size} requests held back by the cap of {limit} per tick"
            )
            true_subset = capped
        return dg.AutomationResult(context, true_subset, child_results=[child])


def _eager() -> dg.AutomationCondition:
    return dg.AutomationCondition.eager()


def generation_condition() -> dg.AutomationCondition:
    """`llm_generations[slug]`: eager, for active LLMs that can generate."""
    return RequestCap((RegistryAllows(GENERATE) & _eager()).with_label("eager_for_active_generators"))


def explanation_condition() -> dg.AutomationCondition:
    """`explanation_sets[source]`: eager for `none`, `human` and the sets of active generators that have
    generated. `llm_generations` (a dependency on all its partitions, for backfill order) is ignored: a new
    generator's sets are new partitions (newly missing), and one generator's run must not redo every set."""
    eager = _eager().ignore(dg.AssetSelection.assets("llm_generations")).with_label("eager_ignoring_generations")
    return RequestCap((RegistryAllows() & eager).with_label("eager_for_active_sources"))


def judgment_condition() -> dg.AutomationCondition:
    """`mjd` and everything downstream keyed by (judge, source): eager for active judges with label logits,
    and only once every upstream blocking check (the MJD's distribution suite, its letter mass) has passed."""
    return RequestCap(
        (
            RegistryAllows(LABEL_LOGITS) & _eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
        ).with_label("eager_for_active_judges_after_checks")
    )


def new_partition_condition() -> dg.AutomationCondition:
    """`eager()`, plus every partition missing and never requested since its last update: `eager()` alone
    skips partitions that already existed when the condition was first evaluated (a set registered with
    `hlv items add` before the UI started, or before a code change reset the condition's cursor). A failed
    run is not retried: the partition was requested and not updated since."""
    condition = dg.AutomationCondition
    unrequested = (condition.missing() & ~condition.in_progress()
                   & ~condition.newly_requested().since(condition.newly_updated()))
    return _eager() | unrequested.with_label("missing_and_never_requested")


def refresh_condition() -> dg.AutomationCondition:
    """An unpartitioned summary over partitioned inputs (`paper_report`, `ternary_plots`): once an input
    partition is updated and nothing upstream is in progress. Not `eager()`: its `~any_deps_missing` waits for
    every partition of every input, and most (judge x source) pairs are never run."""
    condition = dg.AutomationCondition
    return (condition.any_deps_updated().since_last_handled() & ~condition.any_deps_in_progress()
            & ~condition.in_progress()).with_label("refresh_when_inputs_change")


def llm_roles(partitions_def) -> set[str]:
    """The LLM-naming dimensions of a partitions definition: `llm` (slugs), `source` (explanation sources)."""
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        return {r for r in (_role(d.partitions_def) for d in partitions_def.partitions_defs) if r}
    role = _role(partitions_def)
    return {role} if role else set()


def condition_for(partitions_def) -> dg.AutomationCondition | None:
    """The registry-aware condition an automated asset with these partitions should carry (None: it names no
    LLM): judge x source -> `judgment_condition`, LLM alone -> `generation_condition`, source alone ->
    `explanation_condition`."""
    roles = llm_roles(partitions_def)
    if roles == {"llm", "source"}:
        return judgment_condition()
    if roles == {"llm"}:
        return generation_condition()
    if roles == {"source"}:
        return explanation_condition()
    return None


def with_registry_conditions(defs: dg.Definitions) -> dg.Definitions:
    """`defs` with `condition_for` applied to every automated asset whose partitions name an LLM (what the
    asset modules are meant to declare themselves; for tests, and to check that they do)."""
    graph = defs.resolve_asset_graph()

    def _apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        node = graph.get(spec.key)
        if spec.automation_condition is None or isinstance(spec.automation_condition, RequestCap):
            return spec
        condition = condition_for(node.partitions_def)
        return spec.replace_attributes(automation_condition=condition) if condition else spec

    return defs.map_asset_specs(func=_apply)


# ---- registry -> partitions -------------------------------------------------------------------------------
def _registry_sensor_fn(context: dg.SensorEvaluationContext):
    cursor = json.loads(context.cursor) if context.cursor else {}
    first = not cursor.get("defaults_synced")
    graph = context.repository_def.asset_graph if context.repository_def is not None else None
    plan = partition_sync.plan_sync(context.instance, partition_sync.engine_now(), asset_graph=graph,
                                    sync_defaults=first, log=context.log)
    new_cursor = json.dumps({**cursor, "defaults_synced": True}, sort_keys=True)
    for name, keys in plan.kept.items():
        if keys:
            context.log.info(f"kept {name} partitions {keys}: not allowed now, but materialized before")
    requests = plan.requests()
    if not requests:
        context.update_cursor(new_cursor)
        return dg.SkipReason("the dynamic partitions already match the registry")
    context.log.info(plan.summary())
    return dg.SensorResult(dynamic_partitions_requests=requests, cursor=new_cursor)


def registry_sensor() -> dg.SensorDefinition:
    return dg.SensorDefinition(
        name=REGISTRY_SENSOR,
        evaluation_fn=_registry_sensor_fn,
        minimum_interval_seconds=int(os.environ.get("HLV_REGISTRY_SENSOR_SECONDS", 60)),
        default_status=_status("HLV_REGISTRY_SENSOR_STATUS"),
        description="LLM registry -> `generators` / `judges` partitions (adds and removes keys; a key with "
        "materializations stays for its history), plus the built-in explanation sources and registered item "
        "sets. The YAML defaults are synced on the first tick and by the `registry_refresh` schedule.",
    )


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.all(),
        default_status=_status("HLV_AUTOMATION_STATUS"),
        minimum_interval_seconds=int(os.environ.get("HLV_AUTOMATION_SECONDS", 60)),
        use_user_code_server=True,  # the registry-aware conditions are Python reading the store
        run_tags={"hlv/trigger": "automation"},
        description="Declarative automation of every asset; LLM-keyed assets follow the registry and at most "
        "HLV_AUTOMATION_MAX_PER_TICK asset partitions are requested per tick.",
    )


@dg.definitions
def automation() -> dg.Definitions:
    return dg.Definitions(sensors=[registry_sensor(), automation_sensor()])
