"""Automation: a new LLM refreshes everything, a retired one freezes, and no tick floods the run queue.

Three pieces, all picked up by `load_from_defs_folder`:

* `llm_registry_sensor` turns the LLM registry (results store) into `llm` partitions and makes sure the
  `none`/`human` explanation sources exist. It returns `SensorResult(dynamic_partitions_requests=...)`; it
  never deletes a partition. The YAML defaults (`llms.yaml`) are synced into the store on the first tick and
  then on the cron `HLV_REGISTRY_CRON` (default daily, 04:00 UTC); what `hlv llm add|retire` writes to the
  store is picked up on the next tick (every `HLV_REGISTRY_SENSOR_SECONDS`, default 60). A schedule cannot
  return partition requests, hence a sensor that keeps the cron in its cursor.
* Registry-aware automation conditions for the assets keyed by LLM slugs (`generation_condition`,
  `explanation_condition`, `judgment_condition`): the asset modules use them instead of a bare `eager()`.
  `RegistryAllows` keeps only partitions whose every slug is active in the registry and, for the `llm`
  dimension, has the capability the asset needs (`label_logits` for MJDs, `generate` for generations); a
  retired LLM's partitions and results stay, they just stop refreshing. `RequestCap` bounds how many asset
  partitions one tick may request (`HLV_AUTOMATION_MAX_PER_TICK`, default 16); what it holds back stays
  pending (`eager()` remembers it until handled) and is requested on later ticks.
* `hlv_automation_sensor`, the `AutomationConditionSensorDefinition` evaluating every condition. The
  conditions above are plain Python reading the store, so it runs in the code server
  (`use_user_code_server=True`); its default status is `HLV_AUTOMATION_STATUS` (running unless `stopped`).
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dagster as dg

from hlv_assets.defs.partitions import BUILTIN_SOURCES, explanation_partitions, llm_partitions

REGISTRY_SENSOR = "llm_registry_sensor"
AUTOMATION_SENSOR = "hlv_automation_sensor"
DEFAULT_REGISTRY_CRON = "0 4 * * *"
DEFAULT_MAX_PER_TICK = 16
GENERATE = "generate"
LABEL_LOGITS = "label_logits"


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


def _engine():
    # resolve the URL first: `get_engine()` without one caches whatever store the process saw first
    from hlv_assets.store.db import default_url, get_engine

    return get_engine(default_url())


# ---- the registry as automation sees it -------------------------------------------------------------------
@dataclass(frozen=True)
class RegistryEntry:
    slug: str
    active: bool
    capabilities: frozenset[str]


def registry_state(engine=None) -> dict[str, RegistryEntry]:
    """Every LLM of the store's registry (retired ones included), by slug."""
    from hlv_assets.llm.registry import LLMSpec, SpecError
    from hlv_assets.store import registry

    out = {}
    for entry in registry.entries(engine or _engine()):
        try:
            capabilities = frozenset(LLMSpec.from_dict(entry.spec).capabilities)
        except SpecError:  # an entry that no longer validates is never automated
            capabilities = frozenset()
        out[entry.slug] = RegistryEntry(entry.slug, bool(entry.active), capabilities)
    return out


#: Dynamic partitions whose keys are LLM slugs, and those whose keys are explanation sources
#: (`<generator>.<set>`, `none`, `human`; for registered item sets `<source>@<set>`).
SLUG_PARTITIONS = frozenset({llm_partitions.name})
SOURCE_PARTITIONS = frozenset({explanation_partitions.name, "item_set_sources"})


def source_generator(source: str) -> str | None:
    """`llama3.lf-first` -> `llama3` (also `llama3.lf-first@myset`); built-in sources have no generator."""
    base = source.rpartition("@")[0] if "@" in source else source
    if base in BUILTIN_SOURCES:
        return None
    return base.rpartition(".")[0] or base


def partition_allowed(
    dims: Mapping[str, str], registry: Mapping[str, RegistryEntry], capability: str | None
) -> bool:
    """Whether automation may request a partition with these keys (`{"llm": slug, "source": source}`, either
    optional): the slug is active and has `capability`; the generator behind the source (if any) is active."""
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
    return True


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
        return f"every LLM the partition names is active in the registry{what}"

    @property
    def requires_cursor(self) -> bool:
        return False

    def evaluate(self, context: dg.AutomationContext) -> dg.AutomationResult:
        candidates = context.candidate_subset
        if candidates.is_empty or not candidates.is_partitioned:
            return dg.AutomationResult(context, candidates)
        registry = registry_state()
        keys = set()
        for key in candidates.expensively_compute_partition_keys():
            dims = _dimensions(context.partitions_def, key)
            if dims is None or partition_allowed(dims, registry, self.capability):
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
    """`explanation_sets[source]`: eager for `none`, `human` and the sets of active generators."""
    return RequestCap((RegistryAllows() & _eager()).with_label("eager_for_active_sources"))


def judgment_condition() -> dg.AutomationCondition:
    """`mjd` and everything downstream keyed by (judge, source): eager for active judges with label logits,
    and only once every upstream blocking check (the MJD's distribution suite, its letter mass) has passed."""
    return RequestCap(
        (
            RegistryAllows(LABEL_LOGITS) & _eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
        ).with_label("eager_for_active_judges_after_checks")
    )


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
def partition_requests(
    instance: dg.DagsterInstance, engine=None, *, sync_defaults: bool = True, log=None
) -> list[dg.AddDynamicPartitionsRequest]:
    """What the registry asks of the dynamic partitions: its active slugs that are not yet `llm` partitions,
    and the built-in explanation sources. Only additions: a retired LLM keeps its partitions."""
    from hlv_assets.llm.registry import SpecError, validate_slug
    from hlv_assets.pipeline import sync_registry
    from hlv_assets.store import registry

    engine = engine or _engine()
    if sync_defaults:
        active = sync_registry(engine)
    else:
        active = [e.slug for e in registry.entries(engine, active_only=True)]
    have = set(instance.get_dynamic_partitions(llm_partitions.name))
    new = []
    for slug in active:
        if slug in have:
            continue
        try:
            new.append(validate_slug(slug))
        except SpecError as exc:  # a hand-edited store: never let it break the partition keys
            if log is not None:
                log.warning(str(exc))
    requests = [llm_partitions.build_add_request(new)] if new else []
    have_sources = set(instance.get_dynamic_partitions(explanation_partitions.name))
    missing = [s for s in BUILTIN_SOURCES if s not in have_sources]
    if missing:
        requests.append(explanation_partitions.build_add_request(missing))
    return requests


def _defaults_due(cursor: str | None, now: datetime.datetime, cron: str) -> bool:
    from dagster._utils.schedules import get_latest_completed_cron_tick

    if not cursor:
        return True
    synced = json.loads(cursor).get("defaults_synced_at")
    if synced is None:
        return True
    last_tick = get_latest_completed_cron_tick(cron, now, "UTC")
    return synced < last_tick.timestamp()


def _registry_sensor_fn(context: dg.SensorEvaluationContext):
    now = datetime.datetime.now(datetime.timezone.utc)
    cursor = json.loads(context.cursor) if context.cursor else {}
    sync_defaults = _defaults_due(context.cursor, now, registry_cron())
    requests = partition_requests(context.instance, sync_defaults=sync_defaults, log=context.log)
    if sync_defaults:
        cursor["defaults_synced_at"] = now.timestamp()
    new_cursor = json.dumps(cursor, sort_keys=True)
    if not requests:
        context.update_cursor(new_cursor)
        return dg.SkipReason("the llm and explanations partitions already cover the active registry")
    for request in requests:
        context.log.info(f"adding {request.partitions_def_name} partitions {list(request.partition_keys)}")
    return dg.SensorResult(dynamic_partitions_requests=requests, cursor=new_cursor)


def registry_sensor() -> dg.SensorDefinition:
    return dg.SensorDefinition(
        name=REGISTRY_SENSOR,
        evaluation_fn=_registry_sensor_fn,
        minimum_interval_seconds=int(os.environ.get("HLV_REGISTRY_SENSOR_SECONDS", 60)),
        default_status=_status("HLV_REGISTRY_SENSOR_STATUS"),
        description="LLM registry -> `llm` partitions (only additions; a retired LLM keeps its partitions), "
        "plus the `none`/`human` explanation sources. YAML defaults synced on HLV_REGISTRY_CRON.",
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
