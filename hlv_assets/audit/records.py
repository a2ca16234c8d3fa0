"""The Dagster side of an audit: the materialization that wrote a row, the chain of materializations it was
built from (partition mappings followed), runs, check evaluations and staleness."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import dagster as dg
from dagster import DagsterEventType
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._time import get_current_datetime

from hlv_assets.audit.row import _asset_partition, _plain
from hlv_assets.defs.automation import source_generator

#: Materialization metadata not worth repeating in an audit (previews and rendered tables).
_SKIP_METADATA = frozenset({"preview", "table", "raw_scores", "shares", "comparison", "plot_table", "plot"})
#: How many chain nodes to follow at most (a guard for very wide graphs).
_MAX_NODES = 64
#: How many partitions of one upstream asset to follow (AllPartitionMapping over a big dimension).
_MAX_PARENT_PARTITIONS = 8
#: Tag prefix of the data versions a materialization read (Dagster's data provenance). Its input *event
#: pointers* name the upstream asset's latest event of any partition, so the chain maps partitions itself.
_INPUT_VERSION = "dagster/input_data_version/"


def _node(record) -> dict:
    """One materialization as the audit shows it."""
    entry = record.event_log_entry
    mat = entry.asset_materialization
    tags = mat.tags or {}
    return {
        "asset": mat.asset_key.to_user_string(),
        "partition": mat.partition,
        "run_id": entry.run_id,
        "storage_id": record.storage_id,
        "timestamp": datetime.fromtimestamp(entry.timestamp).astimezone().isoformat(),
        "code_version": tags.get("dagster/code_version"),
        "data_version": tags.get("dagster/data_version"),
        "metadata": {k: _plain(v) for k, v in mat.metadata.items() if k not in _SKIP_METADATA},
        "input_data_versions": {
            k[len(_INPUT_VERSION) :]: v for k, v in tags.items() if k.startswith(_INPUT_VERSION)
        },
        "inputs": [],
    }


def _materialization_in_run(instance, asset: str, partition: str | None, run_id: str):
    """The materialization of `asset[partition]` that run `run_id` wrote, as the asset index holds it (the
    run's own event ids differ from the index's on a sharded SQLite event log: it is found by its time)."""

    if not run_id:
        return None
    events = [
        r.event_log_entry
        for r in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records
    ]
    mine = [e for e in events if e.asset_materialization.asset_key.to_user_string() == asset]
    # rows a partition writes under another key (the baselines on an MJD's item subset, `items=<sha>`)
    exact = [e for e in mine if (e.asset_materialization.partition or "") == (partition or "")]
    for event in reversed(exact or mine):
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=event.asset_materialization.asset_key,
                asset_partitions=[event.asset_materialization.partition]
                if event.asset_materialization.partition
                else None,
                after_timestamp=event.timestamp - 1e-3,
                before_timestamp=event.timestamp + 1e-3,
            ),
            limit=10,
        )
        for record in result.records:
            if record.run_id == run_id:
                return record
    return None


def _latest_before(instance, asset: str, partition: str | None, before_storage_id: int | None):
    """The latest materialization of a partition before `before_storage_id` (None: the latest of all)."""

    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey.from_user_string(asset),
            asset_partitions=[partition] if partition else None,
            before_storage_id=before_storage_id,
        ),
        limit=1,
    )
    return result.records[0] if result.records else None


def _parents(graph, instance, asset: str, partition: str | None) -> list[tuple[str, str | None, str]]:
    """(asset, partition, how) for every upstream partition a partition reads: the graph's dependencies with
    their partition mappings, plus the generations an explanation set reads from the store."""

    key = dg.AssetKey.from_user_string(asset)
    out: list[tuple[str, str | None, str]] = []
    if graph is not None and graph.has(key):
        with partition_loading_context(dynamic_partitions_store=instance):
            for parent in sorted(graph.get(key).parent_keys):
                name = parent.to_user_string()
                if not graph.has(parent) or not graph.get(parent).is_partitioned:
                    out.append((name, None, "dependency"))
                    continue
                try:
                    mapped = graph.get_parent_partition_keys_for_child(partition, parent, key)
                    keys = sorted(mapped.partitions_subset.get_partition_keys())
                except Exception as exc:  # an invalid partition mapping in the definitions
                    out.append((name, None, f"unmapped ({str(exc)[:120]})"))
                    continue
                how = (
                    "dependency"
                    if len(keys) <= _MAX_PARENT_PARTITIONS
                    else f"dependency (the first {_MAX_PARENT_PARTITIONS} of {len(keys)} partitions)"
                )
                out.extend((name, k, how) for k in keys[:_MAX_PARENT_PARTITIONS])
    if asset == "explanation_sets" and partition:
        generator = source_generator(partition)
        if generator:
            out.append(
                ("llm_generations", generator, "store (explanation_sets reads the stored generations)")
            )
    return out


def _read_version(parents: list[tuple[str | None, Any]]) -> str | None:
    """The input data version Dagster records for one upstream asset: the data version itself when it is
    unpartitioned, else the sha256 of its partitions' data versions joined in partition-key order."""

    if any(record is None for _, record in parents):
        return None
    versions = [
        (
            partition,
            (record.event_log_entry.asset_materialization.tags or {}).get("dagster/data_version") or "",
        )
        for partition, record in parents
    ]
    if len(versions) == 1 and versions[0][0] is None:
        return versions[0][1]
    joined = "".join(v for _, v in sorted(versions, key=lambda pv: pv[0] or ""))
    return hashlib.sha256(joined.encode("utf8")).hexdigest()


def _chain(instance, graph, start) -> list[dict]:
    """The materialization `start` and, recursively, the upstream materializations it was built from: for each
    upstream partition the latest materialization before the reader's. `matches` says whether those are the
    data the reader recorded reading (Dagster's input data version), where it recorded one."""
    nodes, queue, seen = [], [(start, None)], set()
    while queue and len(nodes) < _MAX_NODES:
        record, reader = queue.pop(0)
        if record.storage_id in seen:
            continue
        seen.add(record.storage_id)
        node = {**_node(record), "read_by": reader}
        nodes.append(node)
        where = _asset_partition(node["asset"], node["partition"])
        by_asset: dict[str, list[tuple[str | None, Any]]] = {}
        for asset, partition, how in _parents(graph, instance, node["asset"], node["partition"]):
            parent = (
                None
                if how.startswith("unmapped")
                else _latest_before(instance, asset, partition, record.storage_id)
            )
            node["inputs"].append(
                {
                    "asset": asset,
                    "partition": partition,
                    "how": how,
                    "storage_id": parent.storage_id if parent else None,
                }
            )
            if how == "dependency":
                by_asset.setdefault(asset, []).append((partition, parent))
            if parent is not None:
                queue.append((parent, where))
        for entry in node["inputs"]:
            recorded = node["input_data_versions"].get(entry["asset"])
            if recorded and entry["asset"] in by_asset:
                expected = _read_version(by_asset[entry["asset"]])
                entry["matches"] = None if expected is None else expected == recorded
    return nodes


def _run(instance, run_id: str) -> dict | None:
    record = instance.get_run_record_by_id(run_id) if run_id else None
    if record is None:
        return None
    run = record.dagster_run
    when = lambda t: datetime.fromtimestamp(t).astimezone().isoformat() if t else None  # noqa: E731
    return {
        "status": run.status.value,
        "job": run.job_name,
        "started": when(record.start_time),
        "ended": when(record.end_time),
        "tags": {
            k: v
            for k, v in run.tags.items()
            if k.startswith(("hlv/", "dagster/partition", "dagster/sensor", "dagster/backfill"))
        },
    }


def _checks_in_run(instance, run_id: str, asset: str, partition: str | None) -> dict:
    out = {}
    if not run_id:
        return out
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    for record in records:
        data = record.event_log_entry.dagster_event.event_specific_data
        if data.asset_key.to_user_string() != asset:
            continue
        if partition and getattr(data, "partition", None) not in (None, partition):
            continue
        out[data.check_name] = {
            "passed": data.passed,
            "failures": _plain(data.metadata.get("failures")) if data.metadata else None,
        }
    return out


class _Staleness:
    """Dagster's stale status of asset partitions (code versions and data versions), for one audit."""

    def __init__(self, instance, defs):
        graph = defs.resolve_asset_graph()
        view = AssetGraphView(
            temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
            instance=instance,
            asset_graph=graph,
        )
        self.graph = graph
        self.resolver = CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)

    def __call__(self, asset: str, partition: str | None) -> dict | None:
        key = dg.AssetKey.from_user_string(asset)
        if not self.graph.has(key):
            return None
        try:
            status = self.resolver.get_status(key, partition)
            causes = self.resolver.get_stale_root_causes(key, partition) if status.value == "STALE" else []
        except Exception as exc:  # a partition that no longer exists, a changed partitions definition
            return {"status": "UNKNOWN", "causes": [str(exc)[:200]]}
        return {
            "status": status.value,
            "causes": [
                f"{c.asset_key.to_user_string()}"
                f"{'[' + str(c.partition_key) + ']' if c.partition_key else ''}: {c.reason}"
                for c in causes
            ],
        }


def _freshness(writer: dict | None, chain: list[dict]) -> dict:
    """Whether the row is up to date: Dagster's stale status names direct causes only (a new code version, a
    new data version of a direct input), so the chain is checked too: a stale or superseded materialization
    anywhere upstream means the row would change if rebuilt."""
    reasons = []
    for node in chain:
        where = _asset_partition(node["asset"], node["partition"])
        if node.get("stale") and node["stale"]["status"] == "STALE":
            reasons += [f"{where} is stale: {c}" for c in node["stale"]["causes"]] or [f"{where} is stale"]
        if node.get("latest") is False:
            reasons.append(f"{where} was rebuilt after {node.get('read_by') or 'this row'} read it")
    if writer and writer["status"] not in ("FRESH", "STALE"):
        reasons.append(f"the writing partition is {writer['status']}")
    return {"up_to_date": not reasons, "reasons": reasons}
