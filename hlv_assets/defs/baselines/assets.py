"""Group `baselines`: the five baseline distributions over the 341 items and the comparison table."""


import dagster as dg
import pandas as pd

from hlv_assets.defs.checks import commit_if_passed, distribution_check_result, distribution_check_spec
from hlv_assets.defs.io_managers import BY_PARTITION, DISTRIBUTION_IO
from hlv_assets.defs.lineage import frame_metadata, frame_sha256, lineage, stored_rows_table, versioned
from hlv_assets.defs.partitions import baseline_partitions
from hlv_assets.defs.resources import HLVSettings, ResultStoreResource
from hlv_assets.lib.comparison import baseline_rows
from hlv_assets.lib.distributions import baseline_distribution, distribution_frame, items_sha256

ITEM_SET = "hlv341"


@dg.asset(
    group_name="baselines", partitions_def=baseline_partitions, kinds={"pandas"}, io_manager_key=DISTRIBUTION_IO,
    code_version=versioned("baseline-v1"), check_specs=[distribution_check_spec("baseline_distributions", partitions_def=baseline_partitions)],
    automation_condition=dg.AutomationCondition.eager(),
)
def baseline_distributions(context: dg.AssetExecutionContext, hlv_items: pd.DataFrame):
    """One baseline distribution over the 341 items: ChaosNLI HJD, VariErr, MNLI, MNLI one-hot, uniform.
    Checked before it is stored: a frame that fails the distribution suite is never stored."""
    source = context.partition_key
    frame = distribution_frame(hlv_items.uid, baseline_distribution(hlv_items, source))
    metadata = {**frame_metadata(frame, {"hlv_items": frame_sha256(hlv_items)}), "item_set": ITEM_SET}
    output = dg.Output(frame, metadata=metadata, data_version=dg.DataVersion(frame_sha256(frame)))
    yield from commit_if_passed(f"baseline_distributions[{source}]", output,
                                [distribution_check_result(frame, len(hlv_items))])


@dg.asset(
    group_name="baselines", kinds={"sqlmodel"}, code_version=versioned("comparison-v1"),
    ins={"baseline_distributions": dg.AssetIn(metadata=BY_PARTITION)},
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
)
def distribution_comparison(context: dg.AssetExecutionContext, hlv_items: pd.DataFrame,
                            baseline_distributions: dict[str, pd.DataFrame], settings: HLVSettings,
                            results: ResultStoreResource) -> dg.MaterializeResult:
    """KL, JSD, TVD and D.Corr of each baseline against the ChaosNLI HJD over the 341 items (SPEC §4).

    MJD rows are added by `mjd_comparison`, each on its own items with the baselines recomputed there.
    """
    store = results.store()
    hjd = baseline_distributions["chaosnli"]
    dists = {}
    for source in baseline_partitions.get_partition_keys():  # the table's order
        frame = baseline_distributions[source]
        if len(frame) != len(hlv_items):
            raise dg.Failure(f"baseline_distributions[{source}] has {len(frame)} rows in the store, expected "
                             f"{len(hlv_items)}: materialize it again (profile {settings.profile})")
        dists[source] = frame
    rows = baseline_rows(hjd, dists, profile=settings.profile)
    store.replace_rows("distribution_comparison", rows, asset_key="distribution_comparison", partition_key="",
                       profile=settings.profile,
                       lineage=lineage(context, items_sha256(hlv_items.uid)))
    return dg.MaterializeResult(metadata={
        "rows": len(rows), "items_sha256": items_sha256(hlv_items.uid),
        "table": stored_rows_table(rows, ["id", "source", "n", "kl", "jsd", "tvd", "dcor"], digits=5),
    })
