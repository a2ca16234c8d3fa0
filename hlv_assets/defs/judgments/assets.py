"""Group `judgments`: MJDs per (judge LLM × explanation source) and their rows in the comparison table."""

import dagster as dg
import pandas as pd

from hlv_assets.defs.automation import judgment_condition
from hlv_assets.defs.checks import DISTRIBUTION_CHECK
from hlv_assets.defs.judgments.run import LETTER_MASS_CHECK, JudgeConfig, judge_partition
from hlv_assets.defs.lineage import lineage, versioned
from hlv_assets.defs.llm_resource import LLMResource
from hlv_assets.defs.partitions import judgment_partitions
from hlv_assets.defs.resources import HLVSettings, ResultStoreResource
from hlv_assets.lib.comparison import baseline_rows, comparison_row
from hlv_assets.lib.distributions import items_sha256
from hlv_assets.lib.mjd_run import MJD_VERSION


def _parts(context) -> tuple[str, str]:
    keys = context.partition_key.keys_by_dimension
    return keys["llm"], keys["explanations"]


@dg.asset(
    group_name="judgments", partitions_def=judgment_partitions, kinds={"transformers"}, pool="gpu",
    io_manager_key="io_manager", code_version=versioned(MJD_VERSION),
    ins={"explanation_sets": dg.AssetIn(partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
        partition_dimension_name="explanations"))},
    check_specs=[
        dg.AssetCheckSpec(DISTRIBUTION_CHECK, asset="mjd", blocking=True, partitions_def=judgment_partitions,
                          description="GX distribution suite on every conversion's MJD"),
        dg.AssetCheckSpec(LETTER_MASS_CHECK, asset="mjd", blocking=True, partitions_def=judgment_partitions,
                          description="share of prompts with little probability on A/B/C stays under the limit"),
    ],
    automation_condition=judgment_condition(),
)
def mjd(context: dg.AssetExecutionContext, config: JudgeConfig, explanation_sets: pd.DataFrame,
        settings: HLVSettings, results: ResultStoreResource, llms: LLMResource):
    """Model judgment distributions: first-token letter scores over all option orders × explanation orders,
    converted (normalize as published, softmax T=20) and averaged per item. Raw per-prompt scores are stored
    so any conversion can be recomputed without the LLM."""
    judge_slug, _ = _parts(context)
    yield from judge_partition(context, config, explanation_sets, judge_slug=judge_slug, settings=settings,
                               results=results, llms=llms, asset_key="mjd", item_set="hlv341",
                               input_name="explanation_sets")


@dg.asset(
    group_name="judgments", partitions_def=judgment_partitions, kinds={"sqlmodel"},
    code_version=versioned("mjd-comparison-v1"),
    deps=["mjd", dg.AssetDep("baseline_distributions", partition_mapping=dg.AllPartitionMapping())],
    automation_condition=judgment_condition(),
)
def mjd_comparison(context: dg.AssetExecutionContext, settings: HLVSettings,
                   results: ResultStoreResource) -> dg.MaterializeResult:
    """The MJD rows of `distribution_comparison` (one per conversion), with the baselines recomputed on the
    same items when the MJD covers a subset of the 341."""
    judge_slug, source = _parts(context)
    store = results.store()
    hjd = store.distribution("baseline_distributions", "chaosnli", settings.profile)
    if hjd.empty:
        raise dg.Failure("no stored HJD: materialize baseline_distributions[chaosnli] first")
    rows, uids = [], None
    for conversion in ("normalize", "softmax"):
        dist = store.distribution(f"mjd:{conversion}", context.partition_key, settings.profile)
        if dist.empty:
            continue
        uids = list(dist.uid)
        rows.append(comparison_row(hjd, dist, source="mjd", profile=settings.profile, llm=judge_slug,
                                   explanations=source, conversion=conversion))
    if not rows:
        raise dg.Failure(f"no stored MJD for {judge_slug}/{source}: materialize mjd first")
    lin = lineage(context, items_sha256(uids))
    store.replace_rows("distribution_comparison", rows, asset_key="mjd_comparison",
                       partition_key=context.partition_key, profile=settings.profile, lineage=lin)
    if len(uids) != len(hjd):
        # the baselines on this subset: one set of rows per distinct item subset, shared by every MJD on it
        dists = {s: store.distribution("baseline_distributions", s, settings.profile)
                 for s in ("chaosnli", "varierr", "mnli", "mnli-onehot", "uniform")}
        subset = baseline_rows(hjd, dists, profile=settings.profile, uids=uids)
        store.replace_rows("distribution_comparison", subset, asset_key="mjd_comparison",
                           partition_key=f"items={items_sha256(uids)[:16]}", profile=settings.profile, lineage=lin)
        rows += subset
    table = pd.DataFrame([{"id": r["row_id"], **r["data"]} for r in rows])
    return dg.MaterializeResult(metadata={
        "rows": len(rows), "n": len(uids),
        "table": dg.MetadataValue.md(table[["id", "source", "conversion", "n", "kl", "jsd", "tvd", "dcor"]]
                                     .to_markdown(index=False, floatfmt=".4f")),
    })
