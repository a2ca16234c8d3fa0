"""`hlv llm add|list|retire`: the LLM registry in the results store (what the `generators` and `judges`
partitions follow: active LLMs that can generate, active LLMs with label logits).

`add` validates the spec (`LLMSpec`) and upserts it with source `cli`, which wins over `llms.yaml` from then
on; `retire` sets active=false and never deletes a row: its results stay in the store; its partitions leave
the UI unless something was materialized in them (then they stay with their history, never automated).
`hlv run`, the registry sensor and the `registry_refresh` schedule apply the registry to the partitions.
"""

from __future__ import annotations

import json
import sys

import yaml

from hlv_assets.llm.registry import LLMSpec, SpecError, sync_registry
from hlv_assets.store import registry
from hlv_assets.store.db import default_url, get_engine


def _engine():
    # resolve the URL here: `get_engine()` without one caches the store the process saw first
    return get_engine(default_url())


def _pairs(values: list[str] | None, what: str) -> dict:
    """`key=value` arguments; values are read as YAML scalars (4 -> int, 0.5 -> float, true -> bool, {..})."""
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} {item!r} is not key=value")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def cmd_add(args) -> int:
    try:
        spec = LLMSpec(
            slug=args.slug,
            backend=args.backend,
            model=args.model or "",
            revision=args.revision or "",
            dtype=args.dtype or "",
            params=_pairs(args.param, "--param"),
            capabilities=tuple(dict.fromkeys(args.capability or ())),
            options=_pairs(args.option, "--option"),
            description=args.description or "",
        )
    except (SpecError, TypeError, ValueError) as exc:
        print(f"hlv llm add: {exc}", file=sys.stderr)
        return 2
    engine = _engine()
    sync_registry(engine)  # the YAML defaults first, so a user's entry is never overwritten by them later
    existed = args.slug in {e.slug for e in registry.entries(engine)}
    registry.upsert(engine, spec.to_dict(), source="cli")
    print(
        f"{'updated' if existed else 'added'} {spec.slug}: {spec.backend} {spec.model} "
        f"capabilities {', '.join(spec.capabilities)}"
        " (active; `hlv run` or the registry sensor adds its partitions)"
    )
    return 0


def list_records(engine=None) -> list[dict]:
    engine = engine or _engine()
    sync_registry(engine)
    return [
        {
            "slug": e.slug,
            "backend": e.spec.get("backend"),
            "model": e.spec.get("model"),
            "capabilities": list(e.spec.get("capabilities") or []),
            "active": e.active,
            "source": e.source,
        }
        for e in registry.entries(engine)
    ]


def cmd_list(args) -> int:
    records = list_records()
    if args.format == "json":
        print(json.dumps(records, indent=2))
        return 0
    columns = ["slug", "backend", "model", "capabilities", "active", "source"]
    cells = [[", ".join(r[c]) if c == "capabilities" else str(r[c]) for c in columns] for r in records]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return 0


def cmd_retire(args) -> int:
    engine = _engine()
    sync_registry(engine)
    try:
        registry.set_active(engine, args.slug, False)
    except KeyError as exc:
        print(f"hlv llm retire: {exc.args[0]}", file=sys.stderr)
        return 1
    print(
        f"retired {args.slug}: its results stay; automation no longer refreshes it and its partitions leave "
        "the UI unless they hold materializations "
        f"(`hlv llm add` it again to reactivate)"
    )
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "llm", help="the LLM registry: add, list, retire", description=__doc__.split("\n\n")[0]
    )
    sub = p.add_subparsers(dest="llm_command", required=True)

    a = sub.add_parser("add", help="add or replace an LLM (validated; wins over llms.yaml from then on)")
    a.add_argument("slug", help="partition key: lowercase letters, digits, '-' and '.'")
    a.add_argument("--backend", required=True, choices=["transformers", "vllm", "openai", "released"])
    a.add_argument("--model", help="model id or path (released: the published folder, may be omitted)")
    a.add_argument("--revision")
    a.add_argument("--dtype")
    a.add_argument(
        "--capability",
        action="append",
        choices=["generate", "label_logits"],
        help="repeat for several (default: both; released: generate)",
    )
    a.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="backend option (e.g. tensor_parallel_size=2, api_key_env=OPENAI_API_KEY); repeatable",
    )
    a.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="decoding parameter (max_new_tokens, temperature, top_p, seed); repeatable",
    )
    a.add_argument("--description")
    a.set_defaults(func=cmd_add)

    ls = sub.add_parser("list", help="slug, backend, model, capabilities, active, source")
    ls.add_argument("--format", default="text", choices=["text", "json"])
    ls.set_defaults(func=cmd_list)

    r = sub.add_parser("retire", help="set active=false (results stay; partitions without history leave the UI)")
    r.add_argument("slug")
    r.set_defaults(func=cmd_retire)
