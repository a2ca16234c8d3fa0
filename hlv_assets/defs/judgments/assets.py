"""Group `judgments`: MJDs per (judge LLM × explanation source) and their rows in the comparison table."""

import dagster as dg
import pandas as pd

from hlv_assets.defs.automation import judgment_condition
from hlv_assets.defs.checks import DISTRIBUTION_CHECK
from hlv_assets.defs.io_managers import BY_PARTITION, DISTRIBUTION_IO
from hlv_assets.defs.judgments.compare import store_mjd_comparison
from hlv_assets.defs.judgments.run import LETTER_MASS_CHECK, JudgeConfig, judge_partition
from hlv_assets.defs.lineage import stored_rows_table, versioned
from hlv_assets.defs.llm_resource import LLMResource
from hlv_assets.defs.partitions import baseline_partitions, judgment_partitions
from hlv_assets.defs.resources import HLVSettings, ResultStoreResource
from hlv_assets.lib.mjd_run import MJD_VERSION

ITEM_SET = "hlv341"


def _parts(context) -> tuple[str, str]:
    keys = context.partition_key.keys_by_dimension
    return keys["judge"], keys["explanations"]


@dg.asset(
    group_name="judgments", partitions_def=judgment_partitions, kinds={"transformers"}, pool="gpu",
    io_manager_key=DISTRIBUTION_IO, code_version=versioned(MJD_VERSION),
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
    so any conversion can be recomputed without the LLM.

    Partition `<judge>/<explanations>` in the CLI, logs and metadata; the UI shows Dagster's key
    `<explanations>|<judge>` (it sorts the dimensions by name): `human|smollm2-135m` is judge smollm2-135m
    reading the human explanations."""
    judge_slug, _ = _parts(context)
    yield from judge_partition(context, config, explanation_sets, judge_slug=judge_slug, settings=settings,
                               results=results, llms=llms, asset_key="mjd", item_set=ITEM_SET,
                               input_name="explanation_sets")


@dg.asset(
    group_name="judgments", partitions_def=judgment_partitions, kinds={"sqlmodel"},
    code_version=versioned("mjd-comparison-v1"),
    ins={"mjd": dg.AssetIn(),
         "baseline_distributions": dg.AssetIn(partition_mapping=dg.AllPartitionMapping(), metadata=BY_PARTITION)},
    automation_condition=judgment_condition(),
)
def mjd_comparison(context: dg.AssetExecutionContext, mjd: pd.DataFrame,
                   baseline_distributions: dict[str, pd.DataFrame], settings: HLVSettings,
                   results: ResultStoreResource) -> dg.MaterializeResult:
    """The MJD rows of `distribution_comparison` (one per conversion), with the baselines recomputed on the
    same items when the MJD covers a subset of the 341.

    Partition `<judge>/<explanations>` in the CLI, logs and metadata; the UI shows Dagster's key
    `<explanations>|<judge>` (it sorts the dimensions by name): `human|smollm2-135m` is judge smollm2-135m
    reading the human explanations."""
    judge_slug, source = _parts(context)
    hjd = baseline_distributions["chaosnli"]
    # the baselines on the MJD's items when it covers a subset of the 341, in the table's order
    dists = {s: baseline_distributions[s] for s in baseline_partitions.get_partition_keys()}
    rows, uids = store_mjd_comparison(
        context, results.store(), hjd=hjd, mjd=mjd, profile=settings.profile, judge=judge_slug,
        explanations=source, item_set=ITEM_SET, subset_baselines=lambda uids: dists if len(uids) != len(hjd) else None)
    return dg.MaterializeResult(metadata={
        "rows": len(rows), "n": len(uids), "partition": f"{judge_slug}/{source}",
        "table": stored_rows_table(rows, ["id", "source", "llm", "explanations", "conversion", "n", "kl", "jsd",
                                          "tvd", "dcor"]),
    })
