"""The sections of an audit about an MJD (judge, prompts, judgments, checks) and its generator."""

from __future__ import annotations

from typing import Any

import dagster as dg

from hlv_assets.audit.records import _checks_in_run, _latest_before, _node
from hlv_assets.audit.row import _plain
from hlv_assets.audit.sources import (
    _artifacts,
    _call_cache,
    _generation_prompt,
    _released_files,
    _spec,
    _templates,
    selection_rule,
)
from hlv_assets.defs.partitions import display_partition
from hlv_assets.lib.missing_letters import DEFAULT_MISSING_LETTERS
from hlv_assets.store.results import ResultStore


def _mjd_section(
    engine, instance, staleness, partition: str, conversion: str | None, profile: str, chain: list[dict]
) -> dict:
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
        # the rule each record was converted with (records from before the rule existed: refuse, the only one)
        "missing_letters": sorted({r.data.get("missing_letters", DEFAULT_MISSING_LETTERS) for r in records}),
        "prompts_missing_letters": sum(any(s is None for s in r.data.get("scores") or ()) for r in records),
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
                "missing_letters",
                "prompts_missing_letters",
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

    if instance is None:
        return None
    result = instance.fetch_materializations(dg.AssetKey("mjd"), limit=50)
    for record in result.records:
        mat = record.event_log_entry.asset_materialization
        if mat.partition and mat.partition.endswith(f"|{slug}") and "judge" in mat.metadata:
            return _plain(mat.metadata["judge"])
    return None
