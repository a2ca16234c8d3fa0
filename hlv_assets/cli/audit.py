"""`hlv audit <id>`: the chain behind one result row, as text or JSON (gathered by `hlv_assets.audit`)."""

from __future__ import annotations

import json
import os
import sys

import dagster as dg

from hlv_assets.audit import AuditError, audit
from hlv_assets.defs.partitions import display_partition
from hlv_assets.lib.paths import output_dir
from hlv_assets.store.db import default_url, get_engine


def _instance():
    """The persistent Dagster instance `hlv run` and `hlv ui` use, if there is one (never created here)."""
    home = os.environ.get("DAGSTER_HOME") or str(output_dir() / "dagster")
    if not os.path.isfile(os.path.join(home, "dagster.yaml")):
        return None
    os.environ["DAGSTER_HOME"] = home
    return dg.DagsterInstance.get()


def cmd_audit(args) -> int:
    try:
        report = audit(
            args.id, engine=get_engine(default_url()), instance=_instance(), verify=not args.no_verify
        )
    except AuditError as exc:
        print(f"hlv audit: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2, default=str) if args.format == "json" else render_text(report))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "audit",
        help="the chain behind one result row: run, code version, judge, prompts, explanations, raw files",
        description=(
            "From a row id (printed by `hlv tables ... --format json`; a unique prefix is enough) back to "
            "the raw files: the run and code version that wrote it, the Dagster materializations it was "
            "built from, for MJDs the judge, prompt templates, explanation source and generator calls, for "
            "fine-tunes the checkpoints, then the raw files' sha256 and the row's earlier versions."
        ),
    )
    p.add_argument("id", help="result row id, e.g. dc-0450d75983db")
    p.add_argument("--format", default="text", choices=["text", "json"])
    p.add_argument(
        "--no-verify", action="store_true", help="do not re-hash the raw files and checkpoints on disk"
    )
    p.set_defaults(func=cmd_audit)


# ---- text -------------------------------------------------------------------------------------------------
def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def _short(value, n: int = 16) -> str:
    text = _fmt(value)
    return text[:n] + "…" if len(text) > n + 1 else text


def _where(asset: str, partition: str | None) -> str:
    return f"{asset}[{display_partition(partition)}]" if partition else asset


def _stale(stale: dict | None, indent: str = "  ") -> str:
    if not stale:
        return ""
    return f"{indent}now: {stale['status']}" + "".join(f"\n{indent}  because {c}" for c in stale["causes"])


def render_text(report: dict) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"{report['id']}  ({report['table']}{'' if report['current'] else ', not current'})")
    add("  " + "  ".join(f"{k}={_fmt(v)}" for k, v in report["row"].items() if k != "checkpoints"))
    w = report["written_by"]
    add("")
    add(f"written by {w['asset_partition']}")
    add(
        f"  run {w['run_id'] or '-'}  code {w['code_version'] or '-'}  profile {w['profile']}"
        f"  at {w['created_at']}"
    )
    if w.get("run"):
        add(
            f"  run {w['run']['status']}  {w['run']['started']} -> {w['run']['ended']}"
            f"  {_fmt(w['run']['tags'])}"
        )
    if w.get("credited") is False:
        add("  not credited to that run: it did not commit these values (see the notes)")
    if w.get("forced"):
        add("  forced: built with --force past a failed blocking check of an input")
    if w.get("stale"):
        add(_stale(w["stale"]))
    if report.get("freshness"):
        f = report["freshness"]
        add(
            "  up to date"
            if f["up_to_date"]
            else "  OUT OF DATE:" + "".join(f"\n    {r}" for r in f["reasons"])
        )
    if report.get("finetune"):
        _render_finetune(report["finetune"], add)
    if report.get("mjd"):
        _render_mjd(report["mjd"], add)
    if report["chain"]:
        add("")
        add("built from (latest materialization of each upstream partition before its reader):")
        for n in report["chain"]:
            flags = [n["stale"]["status"]] if n.get("stale") else []
            if n.get("latest") is False:
                flags.append("superseded")
            mismatched = [i["asset"] for i in n["inputs"] if i.get("matches") is False]
            if mismatched:
                flags.append(f"read other data of {', '.join(mismatched)}")
            add(
                f"  {_where(n['asset'], n['partition'])}  run {n['run_id'][:8]}  code {n['code_version']}  "
                f"data {_short(n['data_version'], 12)}{'  [' + ', '.join(flags) + ']' if flags else ''}"
            )
    add("")
    add("raw input files:")
    for f in report["raw_inputs"]:
        pin = {True: "= pinned", False: "!= PINNED", None: ""}[f["matches_pinned"]]
        now = ""
        if "current_sha256" in f:
            now = (
                "  on disk: missing"
                if not f["current_sha256"]
                else "  on disk: same"
                if f["current_sha256"] == (f["recorded_sha256"] or f["pinned_sha256"])
                else f"  on disk: CHANGED {f['current_sha256'][:16]}…"
            )
        add(f"  {f['path']}  ({f['upstream'] or 'not pinned'})")
        add(
            f"    recorded {_short(f['recorded_sha256'] or '-')} {pin}"
            f"  pinned {_short(f['pinned_sha256'])}{now}"
        )
    add("")
    n = len(report["history"])
    add(f"history ({n} version{'s' if n != 1 else ''}, newest first):")
    for h in report["history"]:
        changed = ", ".join(
            f"{k} {_fmt(v['before'])} -> {_fmt(v['after'])}" for k, v in list(h["changed"].items())[:6]
        )
        add(
            f"  {h['created_at']}  run {(h['run_id'] or '-')[:8]}  code {h['code_version']}"
            f"{'  current' if h['current'] else ''}{'  changed: ' + changed if changed else ''}"
        )
    for note in report["notes"]:
        add(f"note: {note}")
    return "\n".join(lines)


def _render_finetune(ft: dict, add) -> None:
    add("")
    add(
        f"fine-tune {ft['encoder']} ({ft['encoder_model']}) on {ft['distribution_asset'] or '-'}"
        f"[{ft['distribution_partition'] or ''}]"
    )
    for c in ft["checkpoints"]:
        if not c.get("path"):
            add(f"  seed {c['seed']}: {c.get('note', 'no checkpoint')}")
            continue
        ok = {True: "matches the file", False: "DIFFERS from the file", None: "not checked"}[c.get("matches")]
        add(f"  seed {c['seed']}: {c['path']}  sha256 {c['sha256']} ({ok})")


def _render_mjd(m: dict, add) -> None:
    add("")
    add(f"MJD {m['partition']} ({m['conversion'] or 'all conversions'})")
    j = m["judge_llm"]
    add(
        f"  judge {j['slug']}: {j.get('backend')} {j.get('model')} revision {j.get('revision') or '-'} "
        f"dtype {j.get('dtype') or '-'} capabilities {j.get('capabilities')} active {j.get('active')} "
        f"(registry: {j.get('registry_source')})"
    )
    if j.get("identity_at_run"):
        add(f"  identity at run: {_fmt(j['identity_at_run'])}")
    if j.get("call_cache"):
        add(f"  call cache: {j['call_cache']['records']} label_logits records for this model id")
    js = m["judgments"]
    add(
        f"  judgment records: {js['records']} (scores: {', '.join(js['score_kinds']) or '-'}; "
        f"missing letters: rule {', '.join(js['missing_letters']) or '-'}, {js['prompts_missing_letters']} "
        f"prompts missed one), run {(js['run_id'] or '-')[:8]}, code {js['code_version']}"
    )
    if m.get("run"):
        add("  run: " + "  ".join(f"{k}={_fmt(v)}" for k, v in m["run"].items()))
    if m.get("checks"):
        add(
            "  checks: "
            + ", ".join(f"{k} {'passed' if v['passed'] else 'FAILED'}" for k, v in m["checks"].items())
        )
    if m.get("stale"):
        add(_stale(m["stale"]))
    p = m["prompt"]
    unchanged = {True: "unchanged since the run", False: "CHANGED since the run", None: ""}[
        p.get("unchanged_since_run")
    ]
    add(f"  prompt ({', '.join(p['variants']) or '-'}; {p['mjd_version']}; {unchanged}):")
    for t in p["templates"]:
        add(f"    {t['name']} sha256 {t['sha256']}: {t['text']!r}")
    s = m["explanation_source"]
    add(f"  explanations {s['source']}: {s['rule']}")
    if s.get("selection_options"):
        add(f"    options {_fmt(s['selection_options'])}")
    g = m.get("generator")
    if g:
        add(
            f"  generator {g['slug']}: {g.get('backend')} {g.get('model')}"
            f" revision {g.get('revision') or '-'}"
        )
        if g.get("run"):
            add("    run: " + "  ".join(f"{k}={_fmt(v)}" for k, v in g["run"].items()))
        if g.get("call_cache"):
            c = g["call_cache"]
            add(
                f"    call cache: {c['records']} generate records for {c['backend']}/{c['model_id']}, "
                f"{c['prompt_tokens']} prompt + {c['completion_tokens']} completion tokens, ${c['cost_usd']}"
            )
        gen = g["generations"]
        add(
            f"    stored generations: {gen['records']} ({gen['parsed_ok']} parsed),"
            f" run {(gen['run_id'] or '-')[:8]}"
        )
        if g.get("released_files"):
            r = g["released_files"]
            add(
                f"    published files: {r['files']} under {r['folder']} (combined pinned sha256 "
                f"{r['pinned_sha256'][:16]}…)"
            )
        add(f"    prompt {g['prompt']['name']} sha256 {g['prompt']['sha256']}: {g['prompt']['text']!r}")
