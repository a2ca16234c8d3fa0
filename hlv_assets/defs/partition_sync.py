"""Registry -> dynamic partitions: what the UI offers is what can run now.

`generators` = active LLMs that can `generate`, `judges` = active LLMs with `label_logits`, plus the built-in
explanation sources and the registered item sets. Keys are added AND removed, with one rule for removal:

    a key leaves its partitions definition only if no asset has ever materialized it.

A retired (or no longer capable) LLM's key therefore disappears from the UI's "Missing" work when it has no
history, and stays, with its materializations, when it has: deleting a dynamic partition hides its event
history in the UI and leaves declarative-automation evaluation records that still name it (dagster-io/dagster
#33910: the automation tab of a downstream asset fails on a range ending at a deleted key; #32068 fixed the
evaluation itself). A kept key is never automated (`RegistryAllows`) and `hlv run` refuses it in one line;
its results stay in the results store (tables, audit, history) and Dagster's event log either way. The
explanation sources of a retired generator (`<gen>.<set>`, `<gen>.<rule>@<set>`) follow the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dagster as dg
from sqlalchemy.exc import IntegrityError

from hlv_assets.defs.partitions import (
    BUILTIN_SOURCES,
    explanation_partitions,
    generator_partitions,
    item_set_partitions,
    item_set_source_partitions,
    judge_partitions,
)
from hlv_assets.lib import items_import as sets
from hlv_assets.llm.base import GENERATE, LABEL_LOGITS
from hlv_assets.llm.registry import RegistryEntry, SpecError, registry_state, sync_registry, validate_slug
from hlv_assets.store import item_sets
from hlv_assets.store.db import default_url, get_engine

#: Which capability each LLM-keyed partitions definition stands for.
ROLE_CAPABILITY = {generator_partitions.name: GENERATE, judge_partitions.name: LABEL_LOGITS}
SOURCE_DEFS = (explanation_partitions.name, item_set_source_partitions.name)


def engine_now():
    """The results store as the environment names it now (never a URL cached earlier in the process)."""
    return get_engine(default_url())


def source_generator(source: str) -> str | None:
    """`llama3.lf-first` -> `llama3` (also `llama3.lf-first@myset`); built-in sources have no generator."""
    base = source.rpartition("@")[0] if "@" in source else source
    if base in BUILTIN_SOURCES:
        return None
    return base.rpartition(".")[0] or base


def key_allowed(pdef_name: str, key: str, registry: Mapping[str, RegistryEntry]) -> bool:
    """Whether a key of a dynamic partitions definition names only LLMs that may do its work now."""
    if pdef_name in ROLE_CAPABILITY:
        entry = registry.get(key)
        return entry is not None and entry.can(ROLE_CAPABILITY[pdef_name])
    if pdef_name in SOURCE_DEFS:
        generator = source_generator(key)
        return generator is None or (generator in registry and registry[generator].active)
    return True


def why_not(pdef_name: str, key: str, registry: Mapping[str, RegistryEntry], offered: Iterable[str]) -> str:
    """One line: why `key` is not a partition of `pdef_name` and what exists instead."""
    offered = sorted(offered)
    listing = ", ".join(offered) if offered else "none yet"
    if pdef_name in ROLE_CAPABILITY:
        capability = ROLE_CAPABILITY[pdef_name]
        verb = "judge" if capability == LABEL_LOGITS else "generate"
        entry = registry.get(key)
        if entry is None:
            reason = f"{key} is not in the LLM registry (hlv llm list)"
        elif not entry.active:
            reason = f"{key} is retired (hlv llm add it again to reactivate)"
        elif capability not in entry.capabilities:
            reason = f"{key} cannot {verb} (no {capability})"
        else:
            reason = f"{key} is not yet a `{pdef_name}` partition (hlv run syncs the registry first)"
        return f"{reason}; {pdef_name}: {listing}"
    generator = source_generator(key) if pdef_name in SOURCE_DEFS else None
    if generator is not None and not (generator in registry and registry[generator].active):
        return f"explanation source {key}: its generator {generator} is not an active LLM; {pdef_name}: {listing}"
    hint = (f" (materialize llm_generations[{generator}] first)" if pdef_name == explanation_partitions.name
            and generator else "")
    return f"{key} is not a `{pdef_name}` partition{hint}; {pdef_name}: {listing}"


def materialized_keys(instance: dg.DagsterInstance, asset_graph=None) -> dict[str | None, set[str]]:
    """The keys of each dynamic partitions definition that some asset has materialized (by definition name).
    Without an asset graph every dimension of every key counts for every definition (`None`)."""
    out: dict[str | None, set[str]] = {}
    if asset_graph is None:
        seen = out.setdefault(None, set())
        for key in instance.get_asset_keys():
            for pkey in instance.get_materialized_partitions(key):
                seen.update(pkey.split("|"))
        return out
    for node in asset_graph.asset_nodes:
        pdef = node.partitions_def
        if pdef is None or not node.is_materializable:
            continue
        done = instance.get_materialized_partitions(node.key)
        if isinstance(pdef, dg.MultiPartitionsDefinition):
            for dim in pdef.partitions_defs:
                if isinstance(dim.partitions_def, dg.DynamicPartitionsDefinition):
                    keys = {pdef.get_partition_key_from_str(k).keys_by_dimension[dim.name] for k in done}
                    out.setdefault(dim.partitions_def.name, set()).update(keys)
        elif isinstance(pdef, dg.DynamicPartitionsDefinition):
            out.setdefault(pdef.name, set()).update(done)
    return out


@dataclass
class SyncPlan:
    """Keys to add and to delete, by dynamic partitions definition name."""

    add: dict[str, list[str]] = field(default_factory=dict)
    delete: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, list[str]] = field(default_factory=dict)  # not allowed, kept for their history

    def requests(self) -> list:
        out: list = [dg.AddDynamicPartitionsRequest(n, keys) for n, keys in self.add.items() if keys]
        out += [dg.DeleteDynamicPartitionsRequest(n, keys) for n, keys in self.delete.items() if keys]
        return out

    def apply(self, instance: dg.DagsterInstance) -> None:
        for name, keys in self.add.items():
            add_missing(instance, name, keys)
        for name, keys in self.delete.items():
            for key in keys:
                instance.delete_dynamic_partition(name, key)

    def summary(self) -> str:
        parts = [f"+{n} {k}" for n, k in self.add.items() if k] + [f"-{n} {k}" for n, k in self.delete.items() if k]
        return "; ".join(parts) or "no change"


def _item_set_keys(engine) -> dict[str, list[str]]:
    current = item_sets.versions(engine, current_only=True)
    return {item_set_partitions.name: [v.name for v in current],
            item_set_source_partitions.name: [sets.source_key(s, v.name) for v in current
                                              for s in sets.builtin_sources(v.has_explanations)]}


def plan_sync(instance: dg.DagsterInstance, engine=None, *, asset_graph=None, sync_defaults: bool = True,
              log=None) -> SyncPlan:
    """What the registry, the built-in sources and the registered item sets ask of the dynamic partitions."""
    engine = engine or engine_now()
    if sync_defaults:
        sync_registry(engine)
    registry = registry_state(engine)
    wanted: dict[str, list[str]] = {name: [] for name in ROLE_CAPABILITY}
    for slug, entry in registry.items():
        try:
            validate_slug(slug)
        except SpecError as exc:  # a hand-edited store: never let it break the partition keys
            if log is not None:
                log.warning(str(exc))
            continue
        for name, capability in ROLE_CAPABILITY.items():
            if entry.can(capability):
                wanted[name].append(slug)
    wanted[explanation_partitions.name] = list(BUILTIN_SOURCES)
    for name, keys in _item_set_keys(engine).items():
        wanted[name] = keys
    done = materialized_keys(instance, asset_graph)
    plan = SyncPlan()
    for name in (*ROLE_CAPABILITY, *SOURCE_DEFS, item_set_partitions.name):
        have = instance.get_dynamic_partitions(name)
        plan.add[name] = [k for k in wanted.get(name, []) if k not in set(have)]
        if name == item_set_partitions.name:
            continue  # replaced sets stay as history; a set is never unregistered
        history = done.get(name, set()) | done.get(None, set())
        stale = [k for k in have if not key_allowed(name, k, registry)]
        plan.delete[name] = [k for k in stale if k not in history]
        plan.kept[name] = [k for k in stale if k in history]
    return plan


def add_missing(instance, name: str, keys) -> list[str]:
    """Add the keys a dynamic partitions definition lacks; a concurrent process adding the same key first
    (a unique-constraint error) is fine: the key exists either way."""
    new = [k for k in keys if k not in set(instance.get_dynamic_partitions(name))]
    for key in new:
        try:
            instance.add_dynamic_partitions(name, [key])
        except IntegrityError:
            if key not in instance.get_dynamic_partitions(name):
                raise
    return new


def sync_partitions(instance: dg.DagsterInstance, engine=None, *, asset_graph=None,
                    sync_defaults: bool = True) -> SyncPlan:
    """Apply `plan_sync` now (for the CLI, tests and the registry refresh job); returns what changed."""
    plan = plan_sync(instance, engine, asset_graph=asset_graph, sync_defaults=sync_defaults)
    plan.apply(instance)
    return plan


def sync_item_set_partitions(instance, engine) -> list[str]:
    """Registered sets become `item_sets` partitions with their built-in sources (`none@<set>`,
    `human@<set>`); returns what was added (additions only: nothing of a set is removed here)."""
    added = []
    for name, keys in _item_set_keys(engine).items():
        added += add_missing(instance, name, keys)
    return added
