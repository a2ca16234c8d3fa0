"""The gate `hlv run` shares with automation: no build downstream of a partition whose latest blocking check
failed, unless forced (`--force`, recorded on the run and in the rows it writes)."""

from __future__ import annotations

import dagster as dg
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from hlv_assets.defs.partitions import display_partition
from hlv_assets.lib.errors import HLVError

#: Run tag of a run launched past a failed blocking check (`hlv run --force`); its rows record `forced`.
FORCED_TAG = "hlv/forced"
FORCED_TAGS = {FORCED_TAG: "true"}


def is_forced(run) -> bool:
    """Whether a run (a DagsterRun) was launched with `--force`."""
    return bool(run is not None and (run.tags or {}).get(FORCED_TAG) == "true")


def _where(asset: dg.AssetKey, partition: str | None) -> str:
    name = asset.to_user_string()
    return f"{name}[{display_partition(partition)}]" if partition else name


def _upstream_partitions(instance, graph, key: dg.AssetKey, partition: str | None,
                         parent: dg.AssetKey) -> list[str | None]:
    """The partitions of `parent` that `key[partition]` reads, as the graph's partition mapping says."""
    if not graph.get(parent).is_partitioned:
        return [None]
    with partition_loading_context(dynamic_partitions_store=instance):
        mapped = graph.get_parent_partition_keys_for_child(partition, parent, key)
        return sorted(mapped.partitions_subset.get_partition_keys())


def _latest_failed(instance, check_key: dg.AssetCheckKey, partition: str | None, partitioned_check: bool):
    """The latest evaluation of a check on a partition when it failed, else None."""
    kwargs = {"partition_filter": PartitionKeyFilter(key=partition)} if partitioned_check else {}
    records = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=1, **kwargs)
    if records and records[0].status == AssetCheckExecutionRecordStatus.FAILED:
        return records[0]
    return None


def blocking_check_refusals(instance: dg.DagsterInstance, asset_graph, asset_key: dg.AssetKey | str,
                            partition_key: str | None = None) -> list[str]:
    """One line per upstream partition of `asset_key[partition_key]` whose latest blocking check evaluation
    failed (an empty list: go ahead). `asset_graph`: `defs.resolve_asset_graph()`; `partition_key`: Dagster's
    key (a MultiPartitionKey or its `a|b` string), None for an unpartitioned asset."""
    key = dg.AssetKey.from_user_string(asset_key) if isinstance(asset_key, str) else asset_key
    partition = str(partition_key) if partition_key is not None else None
    refusals = []
    for parent in sorted(asset_graph.get(key).parent_keys):
        if not asset_graph.has(parent):
            continue
        checks = [c for c in sorted(asset_graph.get(parent).check_keys, key=lambda c: c.name)
                  if asset_graph.get(c).blocking]
        if not checks:
            continue
        for upstream in _upstream_partitions(instance, asset_graph, key, partition, parent):
            for check in checks:
                partitioned = asset_graph.get(check).partitions_def is not None
                failed = _latest_failed(instance, check, upstream, partitioned and upstream is not None)
                if failed is not None:
                    refusals.append(
                        f"refusing {_where(key, partition)}: its input {_where(parent, upstream)} failed the "
                        f"blocking check {check.name} in run {failed.run_id[:8]}; fix the input and rerun it, "
                        "or pass --force")
    return refusals


class BlockedByFailedCheck(HLVError):
    """`hlv run` refuses a step: an input's latest blocking check failed. `str()` is the refusal line(s): the
    first two, then how many more."""

    exit_code = 1

    def __init__(self, refusals: list[str]):
        self.refusals = refusals
        more = [f"  ... and {len(refusals) - 2} more failed input(s)"] if len(refusals) > 3 else []
        super().__init__("\n".join((refusals[:2] if more else refusals) + more))


def gate_tags(instance: dg.DagsterInstance, asset_graph, asset_key: dg.AssetKey | str,
              partition_key: str | None = None, *, force: bool = False) -> dict[str, str]:
    """The run tags for building `asset_key[partition_key]` now: {} when no input's latest blocking check failed,
    FORCED_TAGS when some did and `force` (the rows then record `forced`); else raises BlockedByFailedCheck."""
    refusals = blocking_check_refusals(instance, asset_graph, asset_key, partition_key)
    if not refusals:
        return {}
    if force:
        return dict(FORCED_TAGS)
    raise BlockedByFailedCheck(refusals)
