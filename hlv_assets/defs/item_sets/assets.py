"""Group `item_sets`: the chain of the 341 (generations, explanation sets, MJDs, comparison with the HJD) for
item sets users register at run time with `hlv items add`.

A set registered while the code location runs cannot get assets of its own, so one asset family serves
every set and the set is part of the partition key (at most two dimensions):

* `item_set` [item_sets]: the current version of set `<set>` from the store; writes its HJD and label
  distribution, and their comparison rows (whole set, any size); registers `none@<set>` (+ `human@<set>`).
* `item_set_generations` [generator × item_set]: one call per (item, label) on the profile's first items; registers
  the sources `<generator>.<rule>@<set>` the set supports (LF always, MNLI-LG from its own label counts).
* `item_set_explanations` [item_set_sources = `<source>@<set>`]: `none`, `human` or `<generator>.<rule>`.
* `item_set_mjd`, `item_set_comparison` [judge × explanations, keys `<judge>` × `<source>@<set>`]: MJDs on the
  profile's first items and their rows in `distribution_comparison` against the set's HJD.

`item_set_explanations` reads the items and generations from the store (no Dagster partition mapping turns
`<source>@<set>` into `<set>`), as `explanation_sets` does for the 341's generations.

Automation: `item_set` is eager and also takes partitions that existed before the first evaluation
(`new_partition_condition`; a new partition, added by `hlv items add` or the `llm_registry_sensor`, is
materialized once); explanations, MJDs and comparisons carry the registry-aware conditions of
`defs/automation.py`. Generations are not automated: every generator × every set would be paid for, and the
released generators cannot explain new items; run them with `hlv items run <set>` or from the UI.
"""

import dagster as dg
import pandas as pd

from hlv_assets.defs.automation import explanation_condition, judgment_condition, new_partition_condition
from hlv_assets.defs.checks import (
    DISTRIBUTION_CHECK,
    commit_if_passed,
    distribution_check_result,
    distribution_check_spec,
)
from hlv_assets.defs.explanations.assets import GenerationConfig
from hlv_assets.defs.io_managers import DISTRIBUTION_IO
from hlv_assets.defs.judgments.compare import store_mjd_comparison
from hlv_assets.defs.judgments.run import LETTER_MASS_CHECK, JudgeConfig, judge_partition
from hlv_assets.defs.lineage import frame_metadata, frame_sha256, lineage, stored_rows_table, versioned
from hlv_assets.defs.llm_resource import LLMResource
from hlv_assets.defs.partitions import (
    item_set_generation_partitions,
    item_set_judgment_partitions,
    item_set_partitions,
    item_set_source_partitions,
)
from hlv_assets.defs.resources import HLVSettings, ResultStoreResource
from hlv_assets.lib import items_import as sets
from hlv_assets.lib.comparison import baseline_rows
from hlv_assets.lib.explanation_sets import (
    GENERATIONS_VERSION,
    SETS_VERSION,
    build_explanation_set,
    generation_items,
    generation_rows,
    split_source,
    unparsed_share,
)
from hlv_assets.lib.mjd_run import (
    MJD_VERSION,
)
from hlv_assets.store import item_sets

GROUP = "item_sets"
ITEM_SET_VERSION = "item-set-v1"


def _version(results: ResultStoreResource, name: str):
    version = item_sets.current(results.engine(), name)
    if version is None:
        raise dg.Failure(f"no item set {name!r} in the store: register it with `hlv items add {name} FILE`")
    return version


def _rules(version) -> list[str]:
    info = version.info or {}
    return sets.set_rules(has_counts=version.has_counts, max_label_total=int(info.get("max_label_total", 0)),
                          has_explanations=version.has_explanations,
                          max_explanations=int(info.get("max_explanations", 0)))


@dg.asset(
    group_name=GROUP, partitions_def=item_set_partitions, kinds={"pandas"}, io_manager_key="io_manager",
    code_version=versioned(ITEM_SET_VERSION),
    check_specs=[distribution_check_spec("item_set", "GX distribution suite on the set's HJD (passes with no HJD), "
                                         "run before anything is stored", partitions_def=item_set_partitions)],
    automation_condition=new_partition_condition(),
)
def item_set(context: dg.AssetExecutionContext, settings: HLVSettings, results: ResultStoreResource):
    """The current version of a registered item set: one row per item with its label counts, annotator labels,
    HJD and explanations where the set has them. Stores the HJD and the label distribution for comparisons,
    only once the HJD has passed the distribution suite."""
    name = context.partition_key
    version = _version(results, name)
    items = item_sets.load_items(results.engine(), name)
    if len(items) != version.n_items:
        raise dg.Failure(f"item set {name!r} version {version.version}: {len(items)} items in the store, "
                         f"{version.n_items} registered")
    hjd = sets.hjd_frame(items)
    check = (dg.AssetCheckResult(check_name=DISTRIBUTION_CHECK, passed=True, metadata={"note": "the set has no HJD"})
             if hjd is None else distribution_check_result(hjd, len(items)))
    metadata = frame_metadata(items, {"content_sha256": version.content_sha256})
    metadata.update({
        "version": version.version, "items": len(items), "has_counts": version.has_counts,
        "has_hjd": version.has_hjd, "has_explanations": version.has_explanations,
        "rules": dg.MetadataValue.json(_rules(version)), "source_file": str((version.info or {}).get("path")),
    })
    if check.passed:
        table = _store_set_distributions(context, results.store(), items, hjd, name, settings.profile,
                                         lineage(context, version.content_sha256))
        if table is not None:
            metadata["comparison"] = table
        sources = sets.builtin_sources(version.has_explanations)
        context.instance.add_dynamic_partitions(item_set_source_partitions.name,
                                                [sets.source_key(s, name) for s in sources])
    output = dg.Output(items, metadata=metadata, data_version=dg.DataVersion(version.content_sha256))
    yield from commit_if_passed(f"item_set[{name}]", output, [check])


def _store_set_distributions(context, store, items: pd.DataFrame, hjd: pd.DataFrame | None, name: str,
                             profile: str, lin: dict):
    """A checked set's HJD and label distribution in the store, with its whole-set comparison rows (any size:
    D.Corr runs in O(N) memory); returns the rows' metadata table, or None."""
    if hjd is None:
        return None
    store.replace_distribution(hjd, asset_key="item_set:hjd", partition_key=name, profile=profile, item_set=name,
                               lineage=lin)
    baselines = sets.set_baselines(items)
    if "labels" in baselines:
        store.replace_distribution(baselines["labels"], asset_key="item_set:labels", partition_key=name,
                                   profile=profile, item_set=name, lineage=lin)
    rows = baseline_rows(hjd, baselines, profile=profile, item_set=name)
    store.replace_rows("distribution_comparison", rows, asset_key="item_set", partition_key=name, profile=profile,
                       lineage=lin)
    return stored_rows_table(rows, ["id", "source", "n", "kl", "jsd", "tvd", "dcor"])


@dg.asset(
    group_name=GROUP, partitions_def=item_set_generation_partitions, kinds={"llm"}, io_manager_key="io_manager",
    code_version=versioned(GENERATIONS_VERSION),
    ins={"item_set": dg.AssetIn(partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
        partition_dimension_name="item_set"))},
)
def item_set_generations(context: dg.AssetExecutionContext, config: GenerationConfig, item_set: pd.DataFrame,
                         settings: HLVSettings, results: ResultStoreResource,
                         llms: LLMResource) -> dg.Output[pd.DataFrame]:
    """One generation call per (item, label) for a set's first items (the profile's `generation_items`), through
    the call cache; registers the explanation sources `<generator>.<rule>@<set>` the set supports.

    Partition `<generator>/<set>` in the CLI, logs and metadata; the UI shows Dagster's key
    `<generator>|<item_set>` (dimensions sorted by name), e.g. `smollm2-135m|myset`."""
    keys = context.partition_key.keys_by_dimension
    slug, name = keys["generator"], keys["item_set"]
    profile = settings.get()
    spec = llms.spec(slug)
    if "generate" not in spec.capabilities:
        raise dg.Failure(f"{slug} cannot generate (capabilities {sorted(spec.capabilities)})")
    if spec.backend == "released":
        raise dg.Failure(f"{slug} replays published text for the 341 items only: it cannot explain {name!r}")
    version = _version(results, name)
    items = generation_items(item_set, spec.backend, config.n_items or profile.generation_items)
    llm = llms.cached(slug, settings.profile, progress=context.log.info)
    frame = generation_rows(items, llm, spec, max_new_tokens=profile.max_new_tokens)
    share, bad = unparsed_share(frame)
    if share > config.max_unparsed_share:
        raise dg.Failure(
            f"{len(bad)} of {len(frame)} answers could not be parsed ({share:.1%} > {config.max_unparsed_share:.1%})",
            metadata={"unparsed": dg.MetadataValue.json(bad)},
        )
    results.store().replace_artifacts(
        "generation", [(f"{r.uid}|{r.label}", {k: r[k] for k in ("item_index", "label", "answer", "parsed", "ok")})
                       for _, r in frame.iterrows()],
        asset_key="item_set_generations", partition_key=sets.source_key(slug, name), profile=settings.profile,
        lineage=lineage(context, frame_sha256(items[["uid", "premise", "hypothesis"]])),
    )
    rules = _rules(version)
    context.instance.add_dynamic_partitions(item_set_source_partitions.name,
                                            [sets.source_key(f"{slug}.{r}", name) for r in rules])
    counters = llm.counters.as_dict()
    metadata = frame_metadata(frame.drop(columns=["parsed"]), {"item_set": version.content_sha256})
    metadata.update({
        "llm_calls": counters.get("misses", 0), "cache_hits": counters.get("hits", 0), "items": len(items),
        "prompt_tokens": int(frame.prompt_tokens.sum()), "completion_tokens": int(frame.completion_tokens.sum()),
        "cost_usd": float(frame.cost_usd.sum()), "unparsed": len(bad), "rules": dg.MetadataValue.json(rules),
    })
    return dg.Output(frame, metadata=metadata, data_version=dg.DataVersion(frame_sha256(frame)))


@dg.asset(
    group_name=GROUP, partitions_def=item_set_source_partitions, kinds={"pandas"}, io_manager_key="io_manager",
    code_version=versioned(SETS_VERSION), automation_condition=explanation_condition(),
)
def item_set_explanations(context: dg.AssetExecutionContext, settings: HLVSettings,
                          results: ResultStoreResource) -> dg.Output[pd.DataFrame]:
    """The explanations a judge reads for one source of a set: `none`, `human` (the set's own) or
    `<generator>.<rule>` (SPEC §2 selection over that generator's stored answers; MNLI-LG's k_l = the set's
    label counts)."""
    source, name = sets.split_source_key(context.partition_key)
    version = _version(results, name)
    generator, rule = split_source(source)
    if source == "human" and not version.has_explanations:
        raise dg.Failure(f"item set {name!r} has no explanations of its own")
    generations = None
    if generator is not None:
        if rule not in _rules(version):
            raise dg.Failure(f"item set {name!r} does not support {rule!r}: it supports {_rules(version)}")
        generations = results.store().artifacts("generation", sets.source_key(generator, name), settings.profile)
        if not generations:
            raise dg.Failure(f"no stored generations of {generator!r} for {name!r} (profile {settings.profile}): "
                             f"materialize item_set_generations[{generator}|{name}] first")
    items = sets.selection_frame(item_sets.load_items(results.engine(), name))
    frame = build_explanation_set(items, source, generations)
    metadata = frame_metadata(frame, {"item_set": version.content_sha256})
    metadata["item_set_version"] = version.version
    return dg.Output(frame, metadata=metadata, data_version=dg.DataVersion(frame_sha256(frame)))


def _judgment_parts(context) -> tuple[str, str, str]:
    keys = context.partition_key.keys_by_dimension
    _, name = sets.split_source_key(keys["explanations"])
    return keys["judge"], keys["explanations"], name


@dg.asset(
    group_name=GROUP, partitions_def=item_set_judgment_partitions, kinds={"transformers"}, pool="gpu",
    io_manager_key=DISTRIBUTION_IO, code_version=versioned(MJD_VERSION),
    ins={"item_set_explanations": dg.AssetIn(partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
        partition_dimension_name="explanations"))},
    check_specs=[
        dg.AssetCheckSpec(DISTRIBUTION_CHECK, asset="item_set_mjd", blocking=True,
                          partitions_def=item_set_judgment_partitions,
                          description="GX distribution suite on every conversion's MJD"),
        dg.AssetCheckSpec(LETTER_MASS_CHECK, asset="item_set_mjd", blocking=True,
                          partitions_def=item_set_judgment_partitions,
                          description="share of prompts with little probability on A/B/C stays under the limit"),
    ],
    automation_condition=judgment_condition(),
)
def item_set_mjd(context: dg.AssetExecutionContext, config: JudgeConfig, item_set_explanations: pd.DataFrame,
                 settings: HLVSettings, results: ResultStoreResource, llms: LLMResource):
    """MJDs of a set's first items (the profile's `mjd_items`) with one judge and one explanation source, as
    `mjd` computes them for the 341 (SPEC §3); raw per-prompt scores stored.

    Partition `<judge>/<source>@<set>` in the CLI, logs and metadata; the UI shows Dagster's key
    `<explanations>|<judge>` (dimensions sorted by name), e.g. `human@myset|smollm2-135m`."""
    judge_slug, _, name = _judgment_parts(context)
    yield from judge_partition(context, config, item_set_explanations, judge_slug=judge_slug, settings=settings,
                               results=results, llms=llms, asset_key="item_set_mjd", item_set=name,
                               input_name="item_set_explanations")


@dg.asset(
    group_name=GROUP, partitions_def=item_set_judgment_partitions, kinds={"sqlmodel"},
    code_version=versioned("item-set-comparison-v1"), ins={"item_set_mjd": dg.AssetIn()},
    automation_condition=judgment_condition(),
)
def item_set_comparison(context: dg.AssetExecutionContext, item_set_mjd: pd.DataFrame, settings: HLVSettings,
                        results: ResultStoreResource) -> dg.MaterializeResult:
    """The MJD rows of `distribution_comparison` for a set (one per conversion) against the set's HJD, with
    the set's baselines (label distribution, uniform) on the same items. A set without an HJD has nothing to
    compare: no rows, said so in the metadata.

    Partition `<judge>/<source>@<set>` in the CLI, logs and metadata; the UI shows Dagster's key
    `<explanations>|<judge>` (dimensions sorted by name), e.g. `human@myset|smollm2-135m`."""
    judge_slug, key, name = _judgment_parts(context)
    version = _version(results, name)
    store = results.store()
    if not version.has_hjd:
        return dg.MaterializeResult(metadata={"rows": 0, "note": f"item set {name!r} has no HJD: nothing to compare"})
    hjd = store.distribution("item_set:hjd", name, settings.profile)
    if hjd.empty:
        raise dg.Failure(f"no stored HJD of {name!r} (profile {settings.profile}): materialize item_set[{name}] first")
    items = item_sets.load_items(results.engine(), name)
    rows, uids = store_mjd_comparison(
        context, store, hjd=hjd, mjd=item_set_mjd, profile=settings.profile, judge=judge_slug, explanations=key,
        item_set=name, subset_baselines=lambda uids: sets.set_baselines(items, uids), subset_prefix=f"{name}:")
    return dg.MaterializeResult(metadata={
        "rows": len(rows), "n": len(uids), "item_set_version": version.version,
        "partition": f"{judge_slug}/{key}",
        "table": stored_rows_table(rows, ["id", "source", "llm", "explanations", "conversion", "n", "kl", "jsd",
                                          "tvd", "dcor"]),
    })
