"""Group `explanations`: each generating LLM's answers (341 × 3 calls, paid once) and the six explanation sets."""

import dagster as dg
import pandas as pd

from hlv_assets.defs.automation import explanation_condition, generation_condition
from hlv_assets.defs.lineage import frame_metadata, frame_sha256, lineage, versioned
from hlv_assets.defs.llm_resource import LLMResource
from hlv_assets.defs.partitions import explanation_partitions, generator_partitions
from hlv_assets.defs.resources import HLVSettings, ResultStoreResource
from hlv_assets.lib.explanation_sets import (
    GENERATIONS_VERSION,
    SETS_VERSION,
    build_explanation_set,
    generation_items,
    generation_rows,
    unparsed_share,
)
from hlv_assets.lib.selection import SET_NAMES


class GenerationConfig(dg.Config):
    """Per-run overrides; the profile decides the defaults."""

    max_unparsed_share: float = 0.01
    n_items: int | None = None


@dg.asset(
    group_name="explanations", partitions_def=generator_partitions, kinds={"llm"}, io_manager_key="io_manager",
    code_version=versioned(GENERATIONS_VERSION),
    automation_condition=generation_condition(),
)
def llm_generations(context: dg.AssetExecutionContext, config: GenerationConfig, hlv_items: pd.DataFrame,
                    settings: HLVSettings, results: ResultStoreResource, llms: LLMResource) -> dg.Output[pd.DataFrame]:
    """One call per (item, label) with the generation prompt of SPEC §2: raw answer, parsed list, tokens, latency.

    Every call goes through the content-addressed cache: a rerun makes zero calls and an interrupted run
    resumes where it stopped. Registers this generator's six explanation sets as `explanations` partitions.
    """
    slug = context.partition_key
    profile = settings.get()
    spec = llms.spec(slug)
    if "generate" not in spec.capabilities:
        raise dg.Failure(f"{slug} cannot generate (capabilities {sorted(spec.capabilities)})")
    items = generation_items(hlv_items, spec.backend, config.n_items or profile.generation_items)
    llm = llms.cached(slug, settings.profile, progress=context.log.info)
    frame = generation_rows(items, llm, spec, max_new_tokens=profile.max_new_tokens)
    share, bad = unparsed_share(frame)
    counters = llm.counters.as_dict()
    if share > config.max_unparsed_share:
        raise dg.Failure(
            f"{len(bad)} of {len(frame)} answers could not be parsed ({share:.1%} > {config.max_unparsed_share:.1%})",
            metadata={"unparsed": dg.MetadataValue.json(bad)},
        )
    store = results.store()
    store.replace_artifacts(
        "generation", [(f"{r.uid}|{r.label}", {k: r[k] for k in ("item_index", "label", "answer", "parsed", "ok")})
                       for _, r in frame.iterrows()],
        asset_key="llm_generations", partition_key=slug, profile=settings.profile,
        lineage=lineage(context, frame_sha256(items[["uid", "premise", "hypothesis"]])),
    )
    context.instance.add_dynamic_partitions(explanation_partitions.name, [f"{slug}.{s}" for s in SET_NAMES])
    metadata = frame_metadata(frame.drop(columns=["parsed"]), {"hlv_items": frame_sha256(hlv_items)})
    metadata.update({
        "llm_calls": counters.get("misses", 0), "cache_hits": counters.get("hits", 0),
        "prompt_tokens": int(frame.prompt_tokens.sum()), "completion_tokens": int(frame.completion_tokens.sum()),
        "cost_usd": float(frame.cost_usd.sum()), "unparsed": len(bad), "items": len(items),
        "counters": dg.MetadataValue.json(counters), "generator": dg.MetadataValue.json(llm.identity().as_dict()),
    })
    return dg.Output(frame, metadata=metadata, data_version=dg.DataVersion(frame_sha256(frame)))


@dg.asset(
    group_name="explanations", partitions_def=explanation_partitions, kinds={"pandas"}, io_manager_key="io_manager",
    code_version=versioned(SETS_VERSION),
    # a set reads its generator's stored answers: no partition mapping turns `<gen>.<set>` into `<gen>`, so the
    # dependency is declared on every generator (a backfill then builds sets after the generations it targets;
    # automation ignores it: `explanation_condition`)
    deps=[dg.AssetDep("llm_generations", partition_mapping=dg.AllPartitionMapping())],
    automation_condition=explanation_condition(),
)
def explanation_sets(context: dg.AssetExecutionContext, hlv_items: pd.DataFrame, settings: HLVSettings,
                     results: ResultStoreResource) -> dg.Output[pd.DataFrame]:
    """The explanations a judge reads, per source: `none`, `human` (VariErr's 4), or `<generator>.<set>`
    (one of the six selections of SPEC §2 over that generator's stored `llm_generations`)."""
    source = context.partition_key
    generations = None
    if source not in ("none", "human"):
        generator = source.rsplit(".", 1)[0]
        generations = results.store().artifacts("generation", generator, settings.profile)
        if not generations:
            raise dg.Failure(f"no stored generations of {generator!r} (profile {settings.profile}): "
                             f"materialize llm_generations[{generator}] first")
    frame = build_explanation_set(hlv_items, source, generations)
    return dg.Output(frame, metadata=frame_metadata(frame, {"hlv_items": frame_sha256(hlv_items)}),
                     data_version=dg.DataVersion(frame_sha256(frame)))
