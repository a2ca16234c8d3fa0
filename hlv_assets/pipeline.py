"""The main job of each profile as an ordered list of steps, and the registry → partitions sync."""

from __future__ import annotations

from hlv_assets.lib.profiles import get_profile
from hlv_assets.runner import Step

RAW_ASSETS = ("chaosnli_mnli", "varierr_nli", "hlv_items", "chaos_dev", "chaos_test", "anli_test",
              "released_generations")
BASELINES = ("chaosnli", "varierr", "mnli", "mnli-onehot", "uniform")
EMBEDDED = "smollm2-135m"
RELEASED = ("llama3", "gpt4o", "mixtral")


def sync_registry(engine=None) -> list[str]:
    """YAML defaults into the store (missing slugs only); returns the active slugs."""
    from hlv_assets.llm.registry import load_default_specs
    from hlv_assets.store import registry
    from hlv_assets.store.db import get_engine

    engine = engine or get_engine()
    registry.sync_defaults(engine, [s.to_dict() for s in load_default_specs()])
    return [e.slug for e in registry.entries(engine, active_only=True)]


def sync_partitions(instance, engine=None) -> list[str]:
    """Active LLMs become `llm` partitions; `none` and `human` always exist as explanation sources.
    Retired LLMs keep their partitions and results (they are never deleted)."""
    from hlv_assets.defs.partitions import BUILTIN_SOURCES, explanation_partitions, llm_partitions

    active = sync_registry(engine)
    new = _add_missing(instance, llm_partitions.name, active)
    _add_missing(instance, explanation_partitions.name, BUILTIN_SOURCES)
    from hlv_assets.defs.item_sets.assets import sync_item_set_partitions
    from hlv_assets.store.db import get_engine

    sync_item_set_partitions(instance, engine or get_engine())
    return new


def _add_missing(instance, name: str, keys) -> list[str]:
    """Add the keys a dynamic partitions definition lacks; a concurrent process adding the same key first
    (a unique-constraint error) is fine: the key exists either way."""
    from sqlalchemy.exc import IntegrityError

    new = [k for k in keys if k not in set(instance.get_dynamic_partitions(name))]
    for key in new:
        try:
            instance.add_dynamic_partitions(name, [key])
        except IntegrityError:
            if key not in instance.get_dynamic_partitions(name):
                raise
    return new


def main_steps(instance, profile_name: str | None = None) -> list[Step]:
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


def dry_run(steps: list[Step], instance) -> str:
    """The LLM calls a run would make (cache misses), with estimated tokens and cost; nothing is called."""
    from hlv_assets.dry_run import plan_steps

    return plan_steps(steps, instance)
