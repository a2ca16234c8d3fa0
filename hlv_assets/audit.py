"""`hlv audit <id>`: from one result row back to the raw files, through the results store and Dagster.

The chain of a row: the row and its earlier versions; the asset partition and run that wrote it; the Dagster
materializations it was built from (for each upstream partition, mapped as the asset graph maps it, the
latest materialization before its reader's, checked against the input data version the reader recorded, so
the chain is the one that ran, not today's latest), with Dagster's stale status and whether anything upstream
was rebuilt since (`freshness`); for an MJD its judge (registry spec, the identity the
run recorded, the judgment records), the prompt templates with their hashes, the explanation source and
its selection rule (SPEC §2), the generating LLM's calls (per run from the materialization metadata, and what
the call cache holds for it); for a fine-tune its checkpoints (sha256 re-checked) and then the chain of the
distribution it was trained on; last the raw input files: the sha256 each raw asset recorded, the pinned
one, and the file on disk now. Without a Dagster instance the store-side half is still printed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

#: Materialization metadata not worth repeating in an audit (previews and rendered tables).
_SKIP_METADATA = frozenset({"preview", "table", "raw_scores"})
#: How many chain nodes to follow at most (a guard for very wide graphs).
_MAX_NODES = 64
#: How many partitions of one upstream asset to follow (AllPartitionMapping over a big dimension).
_MAX_PARENT_PARTITIONS = 8
#: Tag prefix of the data versions a materialization read (Dagster's data provenance). Its input *event
#: pointers* name the upstream asset's latest event of any partition, so the chain maps partitions itself.
_INPUT_VERSION = "dagster/input_data_version/"


class AuditError(LookupError):
    """No row with that id (or an ambiguous prefix)."""


# ---- the row ----------------------------------------------------------------------------------------------
def _versions(engine, row_id: str) -> list:
    from sqlmodel import Session, select

    from hlv_assets.store.models import ResultRow
    from hlv_assets.store.results import ResultStore

    versions = ResultStore(engine).row_versions(row_id)
    if versions:
        return versions
    with Session(engine) as session:  # a unique prefix is enough, as with git hashes
        ids = sorted(
            set(
                session.exec(
                    select(ResultRow.row_id).where(ResultRow.row_id.startswith(row_id, autoescape=True))
                )
            )
        )
    if not ids:
        raise AuditError(
            f"no result row with id {row_id!r} (ids are printed by `hlv tables ... --format json`)"
        )
    if len(ids) > 1:
        raise AuditError(f"{row_id!r} matches {len(ids)} rows: {', '.join(ids[:10])}")
    return ResultStore(engine).row_versions(ids[0])


def _when(value) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _history(versions: list) -> list[dict]:
    """Every version, newest first, with what changed relative to the version before it."""
    out = []
    for i, v in enumerate(versions):
        older = versions[i + 1] if i + 1 < len(versions) else None
        changed = {}
        if older is not None:
            for key in sorted(set(v.data) | set(older.data)):
                if v.data.get(key) != older.data.get(key):
                    changed[key] = {"before": older.data.get(key), "after": v.data.get(key)}
        out.append(
            {
                "created_at": _when(v.created_at),
                "replaced_at": _when(v.replaced_at),
                "current": v.current,
                "run_id": v.run_id,
                "code_version": v.code_version,
                "inputs_sha256": v.inputs_sha256,
                "asset_partition": _asset_partition(v.asset_key, v.partition_key),
                "changed": changed,
            }
        )
    return out


def _asset_partition(asset: str, partition: str | None) -> str:
    from hlv_assets.defs.partitions import display_partition

    return f"{asset}[{display_partition(partition)}]" if partition else asset


# ---- Dagster records --------------------------------------------------------------------------------------
def _plain(value) -> Any:
    raw = getattr(value, "value", value)
    if isinstance(raw, (str, int, float, bool, type(None), list, dict)):
        return raw
    return str(raw)


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
    import dagster as dg
    from dagster import DagsterEventType

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
    import dagster as dg

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
    import dagster as dg
    from dagster._core.definitions.partitions.context import partition_loading_context

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
        from hlv_assets.defs.automation import source_generator

        generator = source_generator(partition)
        if generator:
            out.append(
                ("llm_generations", generator, "store (explanation_sets reads the stored generations)")
            )
    return out


def _read_version(parents: list[tuple[str | None, Any]]) -> str | None:
    """The input data version Dagster records for one upstream asset: the data version itself when it is
    unpartitioned, else the sha256 of its partitions' data versions joined in partition-key order."""
    import hashlib

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
    from dagster import DagsterEventType

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
        from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
        from dagster._core.definitions.data_version import CachingStaleStatusResolver
        from dagster._time import get_current_datetime

        graph = defs.resolve_asset_graph()
        view = AssetGraphView(
            temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
            instance=instance,
            asset_graph=graph,
        )
        self.graph = graph
        self.resolver = CachingStaleStatusResolver(instance=instance, asset_graph=graph, loading_context=view)

    def __call__(self, asset: str, partition: str | None) -> dict | None:
        import dagster as dg

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


# ---- what the row is about --------------------------------------------------------------------------------
def _spec(engine, slug: str) -> dict:
    from sqlmodel import Session

    from hlv_assets.store.models import LLMEntry

    with Session(engine) as session:
        entry = session.get(LLMEntry, slug)
        if entry is None:
            return {"slug": slug, "note": "not in the registry"}
        spec = dict(entry.spec)
        return {
            "slug": slug,
            "backend": spec.get("backend"),
            "model": spec.get("model"),
            "revision": spec.get("revision", ""),
            "dtype": spec.get("dtype", ""),
            "capabilities": spec.get("capabilities"),
            "params": spec.get("params", {}),
            "options": spec.get("options", {}),
            "active": entry.active,
            "registry_source": entry.source,
            "registry_updated_at": _when(entry.updated_at),
        }


def _call_cache(engine, identity: dict | None, operation: str) -> dict | None:
    """What the call cache (LLMCall) holds for this backend/model id and operation (every profile and run)."""
    from sqlmodel import Session, select

    from hlv_assets.store.models import LLMCall

    if not identity:
        return None
    with Session(engine) as session:
        records = list(
            session.exec(
                select(LLMCall.record).where(
                    LLMCall.backend == identity.get("backend"),
                    LLMCall.model_id == identity.get("model_id"),
                    LLMCall.operation == operation,
                )
            )
        )
    return {
        "backend": identity.get("backend"),
        "model_id": identity.get("model_id"),
        "operation": operation,
        "records": len(records),
        "prompt_tokens": sum(int(r.get("prompt_tokens") or 0) for r in records),
        "completion_tokens": sum(int(r.get("completion_tokens") or 0) for r in records),
        "cost_usd": round(sum(float(r.get("cost_usd") or 0.0) for r in records), 6),
    }


def _artifacts(engine, kind: str, partition: str, profile: str) -> list:
    from hlv_assets.store.results import ResultStore

    return ResultStore(engine).artifacts(kind, partition, profile)


def _templates(variants: Iterable[str]) -> dict:
    from hlv_assets.lib import judgments as J
    from hlv_assets.lib.mjd_run import MJD_VERSION
    from hlv_assets.lib.prompts import template_sha256

    names = {
        "plain": ["PLAIN_TEMPLATE"],
        "explanations": ["EXPLANATION_TEMPLATE", "COMMENT_TEMPLATE"],
        "explicit": ["EXPLANATION_TEMPLATE", "EXPLICIT_COMMENT_TEMPLATE"],
    }
    chosen = []
    for variant in sorted(set(variants)) or ["plain", "explanations"]:
        chosen += [n for n in names.get(variant, []) if n not in chosen]
    return {
        "variants": sorted(set(variants)),
        "mjd_version": MJD_VERSION,
        "templates": [
            {"name": n, "sha256": template_sha256(getattr(J, n)), "text": getattr(J, n)} for n in chosen
        ],
    }


def selection_rule(source: str) -> dict:
    """The explanation source and its selection rule, in SPEC §2's words."""
    from dataclasses import asdict

    from hlv_assets.lib.explanation_sets import split_source
    from hlv_assets.lib.selection import DEFAULT_SELECTION, RELEASED_SELECTION_OPTIONS, split_set_name

    base = source.rpartition("@")[0] if "@" in source else source
    generator, set_name = split_source(base)
    if generator is None:
        rule = (
            "no explanations: the plain MJD prompt"
            if set_name == "none"
            else "human: VariErr's 4 annotator explanations of the item (`comments`), with their labels"
        )
        return {"source": source, "generator": None, "set": set_name, "rule": rule}
    scheme, criterion = split_set_name(set_name)
    schemes = {
        "lf": "LF (label-free): one explanation per label, 3 per item",
        "varierr-lg": (
            "VariErr-LG (label-guided): the item's human label sequence (4 slots), each slot a model "
            "explanation of the same label; k_l = VariErr count of label l"
        ),
        "mnli-lg": "MNLI-LG (label-guided): 5 slots, k_l = MNLI count of label l",
    }
    criteria = {
        "first": "first: the first k parsed explanations",
        "longest": "longest: the k longest by characters",
    }
    options = RELEASED_SELECTION_OPTIONS.get(generator, DEFAULT_SELECTION)
    return {
        "source": source,
        "generator": generator,
        "set": set_name,
        "rule": f"{schemes[scheme]}; {criteria[criterion]}",
        "selection_options": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(options).items()},
    }


def _generation_prompt() -> dict:
    from hlv_assets.lib.explanation_sets import GENERATIONS_VERSION
    from hlv_assets.lib.prompts import GENERATION_TEMPLATE, template_sha256

    return {
        "name": "GENERATION_TEMPLATE",
        "sha256": template_sha256(GENERATION_TEMPLATE),
        "generations_version": GENERATIONS_VERSION,
        "text": GENERATION_TEMPLATE,
    }


def _released_files(slug: str, spec: dict) -> dict | None:
    """A replayed generator's published raw-output files, summarised (one per item and label)."""
    from hlv_assets.defs.lineage import combine_sha256
    from hlv_assets.lib.datasource import pinned_files
    from hlv_assets.lib.released import RELEASED_MODELS

    folder = RELEASED_MODELS.get((spec.get("options") or {}).get("released_as", slug))
    if folder is None:
        return None
    files = {p: f.sha256 for p, f in pinned_files().items() if f"/{folder}-raw-output/" in p}
    return {"folder": f"{folder}-raw-output/", "files": len(files), "pinned_sha256": combine_sha256(files)}


# ---- raw files --------------------------------------------------------------------------------------------
def _local_file(rel: str) -> Path | None:
    """The data-pack file as the assets would read it now, without downloading anything."""
    from hlv_assets.lib.datasource import DataSource

    source = DataSource.from_env()
    for base in (source.root, source.cache_dir):
        if base is not None and (Path(base) / rel).is_file():
            return Path(base) / rel
    return None


def _raw_inputs(recorded: dict[str, str], verify: bool) -> list[dict]:
    from hlv_assets.lib.datasource import pinned_files, sha256_file

    pinned = pinned_files()
    out = []
    for rel in sorted(recorded):
        pin = pinned.get(rel)
        entry = {
            "path": rel,
            "recorded_sha256": recorded[rel] or None,
            "pinned_sha256": pin.sha256 if pin else None,
            "upstream": f"{pin.repository}@{pin.commit[:7]}:{pin.upstream_path}" if pin else None,
        }
        entry["matches_pinned"] = (
            entry["recorded_sha256"] == entry["pinned_sha256"] if entry["recorded_sha256"] and pin else None
        )
        if verify:
            local = _local_file(rel)
            entry["local_path"] = str(local) if local else None
            entry["current_sha256"] = sha256_file(local) if local else None
        out.append(entry)
    return out


def _checkpoints(data: dict, verify: bool) -> list[dict]:
    from hlv_assets.lib.datasource import sha256_file

    items = list(data.get("checkpoints") or [])
    if data.get("checkpoint_path") or data.get("checkpoint_sha256"):
        items.insert(0, {"path": data.get("checkpoint_path"), "sha256": data.get("checkpoint_sha256")})
    out = []
    for seed, ckpt in zip(data.get("seeds") or [None] * len(items), items):
        if not ckpt:
            out.append({"seed": seed, "path": None, "note": "no checkpoint (reference row)"})
            continue
        entry = {
            "seed": seed,
            "path": ckpt.get("path"),
            "sha256": ckpt.get("sha256"),
            "train_data_sha256": ckpt.get("train_data_sha256"),
        }
        if verify and ckpt.get("path"):
            path = Path(ckpt["path"])
            weights = path / "model.safetensors" if path.is_dir() else path
            entry["file"] = str(weights)
            entry["current_sha256"] = sha256_file(weights) if weights.is_file() else None
            entry["matches"] = (
                entry["current_sha256"] == ckpt.get("sha256") if entry["current_sha256"] else None
            )
        out.append(entry)
    return out


# ---- putting it together ----------------------------------------------------------------------------------
def _mjd_section(
    engine, instance, staleness, partition: str, conversion: str | None, profile: str, chain: list[dict]
) -> dict:
    from hlv_assets.defs.partitions import display_partition
    from hlv_assets.store.results import ResultStore

    judge, _, source = display_partition(partition).partition("/")
    section: dict[str, Any] = {
        "partition": f"{judge}/{source}",
        "judge": judge,
        "explanations": source,
        "conversion": conversion,
    }
    dist_asset = f"mjd:{conversion}" if conversion else None
    if dist_asset:
        frame = ResultStore(engine).distribution(dist_asset, partition, profile)
        section["distribution"] = {"asset": dist_asset, "items": len(frame)}
    records = _artifacts(engine, "judgment", partition, profile)
    section["judgments"] = {
        "records": len(records),
        "run_id": records[0].run_id if records else None,
        "code_version": records[0].code_version if records else None,
        "score_kinds": sorted({r.data.get("kind") for r in records if r.data.get("kind")}),
        "prompt_tokens": sum(int(r.data.get("prompt_tokens") or 0) for r in records),
    }
    section["prompt"] = _templates(r.data.get("variant") for r in records if r.data.get("variant"))
    mjd_node = next((n for n in chain if n["asset"] == "mjd" and n["partition"] == partition), None)
    if mjd_node is None and instance is not None:
        record = _latest_before(instance, "mjd", partition, None)
        mjd_node = _node(record) if record else None
        if mjd_node:
            section["note"] = "no mjd materialization in this row's chain: showing the latest one"
    identity = None
    if mjd_node:
        meta = mjd_node["metadata"]
        identity = meta.get("judge")
        section["run"] = {
            k: meta.get(k)
            for k in (
                "items",
                "prompts",
                "explanation_orders",
                "llm_calls",
                "cache_hits",
                "letter_mass",
                "refused_conversions",
                "items_sha256",
            )
            if k in meta
        }
        section["run"]["run_id"] = mjd_node["run_id"]
        section["run"]["code_version"] = mjd_node["code_version"]
        section["checks"] = _checks_in_run(instance, mjd_node["run_id"], "mjd", partition) if instance else {}
        current = section["prompt"]["mjd_version"]
        if mjd_node["code_version"]:
            section["prompt"]["unchanged_since_run"] = mjd_node["code_version"].split("+")[0] == current
    section["judge_llm"] = {
        **_spec(engine, judge),
        "identity_at_run": identity,
        "call_cache": _call_cache(engine, identity, "label_logits"),
    }
    if staleness is not None:
        section["stale"] = staleness("mjd", partition)
    section["explanation_source"] = selection_rule(source)
    generator = section["explanation_source"]["generator"]
    if generator:
        section["generator"] = _generator_section(engine, instance, generator, profile, chain, source)
    return section


def _generator_section(engine, instance, slug: str, profile: str, chain: list[dict], source: str) -> dict:
    spec = _spec(engine, slug)
    out: dict[str, Any] = {**spec, "prompt": _generation_prompt()}
    artifacts = _artifacts(engine, "generation", slug, profile)
    out["generations"] = {
        "records": len(artifacts),
        "parsed_ok": sum(bool(a.data.get("ok")) for a in artifacts),
        "run_id": artifacts[0].run_id if artifacts else None,
        "code_version": artifacts[0].code_version if artifacts else None,
    }
    identity = None
    if instance is not None:
        # explanation_sets reads the stored generations (no Dagster dependency): the generations in effect are
        # the latest llm_generations materialization before the explanation set's
        sets_node = next(
            (n for n in chain if n["asset"] == "explanation_sets" and n["partition"] == source), None
        )
        record = _latest_before(
            instance, "llm_generations", slug, sets_node["storage_id"] if sets_node else None
        )
        if record is not None:
            node = _node(record)
            meta = node["metadata"]
            out["run"] = {
                "run_id": node["run_id"],
                "code_version": node["code_version"],
                "data_version": node["data_version"],
                **{
                    k: meta.get(k)
                    for k in (
                        "items",
                        "llm_calls",
                        "cache_hits",
                        "prompt_tokens",
                        "completion_tokens",
                        "cost_usd",
                        "unparsed",
                    )
                    if k in meta
                },
            }
            identity = meta.get("generator")
    if identity is None:
        identity = _judge_identity(instance, slug) or {
            "backend": spec.get("backend"),
            "model_id": spec.get("model"),
        }
    out["identity"] = identity
    out["call_cache"] = _call_cache(engine, identity, "generate")
    if spec.get("backend") == "released":
        out["released_files"] = _released_files(slug, spec)
    return out


def _judge_identity(instance, slug: str) -> dict | None:
    """The identity a judge run recorded for this slug (the same backend generates, in the same profile)."""
    import dagster as dg

    if instance is None:
        return None
    result = instance.fetch_materializations(dg.AssetKey("mjd"), limit=50)
    for record in result.records:
        mat = record.event_log_entry.asset_materialization
        if mat.partition and mat.partition.endswith(f"|{slug}") and "judge" in mat.metadata:
            return _plain(mat.metadata["judge"])
    return None


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


def audit(row_id: str, *, engine=None, instance=None, defs=None, verify: bool = True) -> dict:
    """The audit report of one result row (JSON-ready). `instance`/`defs`: the Dagster instance and
    definitions (None: the store-side half only)."""
    from hlv_assets.store.db import default_url, get_engine

    engine = engine or get_engine(default_url())
    versions = _versions(engine, row_id)
    row = next((v for v in versions if v.current), versions[0])
    report: dict[str, Any] = {
        "id": row.row_id,
        "table": row.table_name,
        "current": row.current,
        "row": {**row.data, "profile": row.profile, "items_sha256": row.items_sha256},
        "written_by": {
            "asset": row.asset_key,
            "partition": row.partition_key,
            "asset_partition": _asset_partition(row.asset_key, row.partition_key),
            "run_id": row.run_id,
            "code_version": row.code_version,
            "profile": row.profile,
            "created_at": _when(row.created_at),
            "inputs_sha256": row.inputs_sha256,
        },
        "notes": [],
    }
    if not row.current:
        report["notes"].append("this row has no current version: it was replaced and not rewritten")
    staleness = None
    chain: list[dict] = []
    if instance is None:
        report["notes"].append("no Dagster instance: runs, materializations and staleness are not shown")
    else:
        report["written_by"]["run"] = _run(instance, row.run_id)
        start = _materialization_in_run(instance, row.asset_key, row.partition_key or None, row.run_id)
        if start is None:
            report["notes"].append(
                f"no materialization of {report['written_by']['asset_partition']} in run "
                f"{row.run_id or '(none)'}: the chain starts from the store only"
            )
        if defs is None:
            from hlv_assets.runner import load_definitions

            defs = load_definitions()
        staleness = _Staleness(instance, defs)
        if start is not None:
            chain = _chain(instance, staleness.graph, start)
        for node in chain:
            latest = _latest_before(instance, node["asset"], node["partition"], None)
            node["latest"] = latest is not None and latest.storage_id == node["storage_id"]
            node["stale"] = staleness(node["asset"], node["partition"])
        writer_partition = chain[0]["partition"] if chain else row.partition_key or None
        report["written_by"]["stale"] = staleness(row.asset_key, writer_partition)
        report["freshness"] = _freshness(report["written_by"]["stale"], chain)
    report["chain"] = chain

    data = row.data
    dist_asset = data.get("distribution_asset")
    if data.get("source") == "mjd" and not dist_asset:  # an MJD row of the comparison table
        report["mjd"] = _mjd_section(
            engine, instance, staleness, row.partition_key, data.get("conversion"), row.profile, chain
        )
    if "checkpoints" in data or "checkpoint_path" in data:
        report["finetune"] = {
            "encoder": data.get("encoder"),
            "encoder_model": data.get("encoder_model"),
            "seeds": data.get("seeds"),
            "checkpoints": _checkpoints(data, verify),
            "distribution_asset": dist_asset,
            "distribution_partition": data.get("distribution_partition"),
        }
        if dist_asset and dist_asset.startswith("mjd:"):
            report["mjd"] = _mjd_section(
                engine,
                instance,
                staleness,
                data.get("distribution_partition") or "",
                dist_asset.split(":", 1)[1],
                row.profile,
                chain,
            )
    recorded: dict[str, str] = {}
    for node in chain:
        inputs = node["metadata"].get("inputs_sha256")
        if isinstance(inputs, dict):
            recorded.update({k: v for k, v in inputs.items() if "/" in k})  # data-pack paths, not asset names
    if not recorded:
        from hlv_assets.lib import raw

        recorded = {raw.CHAOSNLI_MNLI: "", raw.VARIERR: "", raw.HLV_ITEMS: ""}
        report["notes"].append("no raw materialization in the chain: showing the item files' pinned hashes")
    report["raw_inputs"] = _raw_inputs(recorded, verify)
    report["history"] = _history(versions)
    return report
