"""What an audited row is about: registry specs, the call cache, prompt templates, selection rules, raw files
and checkpoints (re-hashed on disk)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from sqlmodel import Session, select

from hlv_assets.audit.row import _when
from hlv_assets.defs.lineage import combine_sha256
from hlv_assets.lib import judgments as J
from hlv_assets.lib.datasource import DataSource, pinned_files, sha256_file
from hlv_assets.lib.explanation_sets import GENERATIONS_VERSION, split_source
from hlv_assets.lib.mjd_run import MJD_VERSION
from hlv_assets.lib.prompts import GENERATION_TEMPLATE, template_sha256
from hlv_assets.lib.released import RELEASED_MODELS
from hlv_assets.lib.selection import DEFAULT_SELECTION, RELEASED_SELECTION_OPTIONS, split_set_name
from hlv_assets.store.models import LLMCall, LLMEntry
from hlv_assets.store.results import ResultStore


def _spec(engine, slug: str) -> dict:
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
    return ResultStore(engine).artifacts(kind, partition, profile)


def _templates(variants: Iterable[str]) -> dict:
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
    return {
        "name": "GENERATION_TEMPLATE",
        "sha256": template_sha256(GENERATION_TEMPLATE),
        "generations_version": GENERATIONS_VERSION,
        "text": GENERATION_TEMPLATE,
    }


def _released_files(slug: str, spec: dict) -> dict | None:
    """A replayed generator's published raw-output files, summarised (one per item and label)."""

    folder = RELEASED_MODELS.get((spec.get("options") or {}).get("released_as", slug))
    if folder is None:
        return None
    files = {p: f.sha256 for p, f in pinned_files().items() if f"/{folder}-raw-output/" in p}
    return {"folder": f"{folder}-raw-output/", "files": len(files), "pinned_sha256": combine_sha256(files)}


def _local_file(rel: str) -> Path | None:
    """The data-pack file as the assets would read it now, without downloading anything."""

    source = DataSource.from_env()
    for base in (source.root, source.cache_dir):
        if base is not None and (Path(base) / rel).is_file():
            return Path(base) / rel
    return None


def _raw_inputs(recorded: dict[str, str], verify: bool) -> list[dict]:
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
