"""The `hlv` command: run assets, print tables, export assets, manage LLMs and item sets, audit, report, UI."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def _store():
    from hlv_assets.store.db import get_engine
    from hlv_assets.store.results import ResultStore

    return ResultStore(get_engine())


def cmd_run(args) -> int:
    from hlv_assets.runner import ensure_dagster_home

    ensure_dagster_home()
    import dagster as dg

    from hlv_assets.pipeline import main_steps, sync_partitions
    from hlv_assets.runner import expand, load_definitions, run_steps

    instance = dg.DagsterInstance.get()
    defs = load_definitions()
    sync_partitions(instance)
    steps = expand(defs, instance, args.selection, args.partition, args.all_partitions) if args.selection else main_steps(instance)
    if args.dry_run:
        from hlv_assets.pipeline import dry_run

        print(dry_run(steps, instance))
        return 0
    report = run_steps(steps, instance=instance, defs=defs)
    total = sum(s for _, _, s in report)
    print(f"{len(report)} steps in {total:.1f}s")
    if not args.selection:
        from hlv_assets.tables import render, table_records

        print("\ndistribution-comparison:\n")
        print(render(table_records(_store(), "distribution-comparison", os.environ.get("HLV_PROFILE", "demo")),
                     "md", short=True))
        from hlv_assets.lib.report import reports_dir

        for name in ("paper_report.md", "paper_report.html"):
            if (reports_dir() / name).exists():
                print(f"\nreport: {reports_dir() / name}")
    return 0


def cmd_tables(args) -> int:
    from hlv_assets.tables import TABLES, render, table_records

    names = [args.name] if args.name else list(TABLES)
    store = _store()
    for name in names:
        records = table_records(store, name, args.profile)
        if not args.name:
            if not records:
                continue
            print(f"\n## {name}\n")
        print(render(records, args.format))
    return 0


def cmd_export(args) -> int:
    from hlv_assets.export import export_asset

    path = export_asset(args.asset, args.partition, args.format, args.output, profile=args.profile)
    if path:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_ui(args) -> int:
    from hlv_assets.lib.paths import REPO_ROOT
    from hlv_assets.runner import ensure_dagster_home

    home = ensure_dagster_home()
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={home})")
    exe = Path(sys.executable).with_name("dagster")
    return subprocess.call([str(exe), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", args.host,
                            "-p", str(args.port)], cwd=REPO_ROOT)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hlv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="materialize assets (no selection: the main job of the profile)")
    p.add_argument("selection", nargs="*", help="asset names (default: the main job)")
    p.add_argument("--partition", help="a partition key: `<llm>/<explanations>` or Dagster's own key string")
    p.add_argument("--all-partitions", action="store_true", help="every known partition of the selected assets")
    p.add_argument("--dry-run", action="store_true", help="show the LLM calls, tokens and cost; run nothing")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("tables", help="print stored result tables")
    p.add_argument("name", nargs="?", help="distribution-comparison, finetune-comparison, anli-ood, ...")
    p.add_argument("--format", default="md", choices=["md", "json", "csv"])
    p.add_argument("--profile", default=None, help="only rows of this profile")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("export", help="write a stored asset out")
    p.add_argument("asset")
    p.add_argument("--partition")
    p.add_argument("--format", default="jsonl", choices=["jsonl", "csv", "parquet", "json", "chaosnli"],
                   help="chaosnli: a fine-tune's test predictions in the ChaosNLI leaderboard format")
    p.add_argument("-o", "--output", help="file (default: standard output for jsonl/csv/json)")
    p.add_argument("--profile", default=None)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ui", help="start the Dagster UI with a persistent DAGSTER_HOME under data/")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    for register in _extensions():
        register(sub)
    return parser


def _extensions():
    """Subcommands defined next to what they manage (LLM registry, item sets, audit, report)."""
    from hlv_assets import cli_extra

    return cli_extra.REGISTRARS


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
