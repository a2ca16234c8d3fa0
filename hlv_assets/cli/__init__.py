"""The `hlv` command: run assets, print tables, export assets, manage LLMs and item sets, audit, report, UI."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import dagster as dg

from hlv_assets.cli import audit, errors, items, llm, report
from hlv_assets.cli.dry_run import plan_steps
from hlv_assets.cli.run import ensure_dagster_home, expand, load_definitions, run_main_job, run_steps
from hlv_assets.defs import jobs, partition_sync
from hlv_assets.lib import settings
from hlv_assets.lib.paths import REPO_ROOT
from hlv_assets.lib.profiles import current_profile_name
from hlv_assets.lib.report import reports_dir
from hlv_assets.store.db import get_engine
from hlv_assets.store.export import export_asset
from hlv_assets.store.results import ResultStore
from hlv_assets.store.tables import TABLES, render, table_records


def _store():
    return ResultStore(get_engine())


def cmd_run(args) -> int:
    """`hlv run [ASSET...]`: the selection (an ad-hoc run per step), or without one the profile's main job
    (`defs/jobs.py`: the plan the Jobs page's `main_<profile>` submits as a backfill)."""
    ensure_dagster_home()
    instance = dg.DagsterInstance.get()
    defs = load_definitions()
    partition_sync.sync_partitions(instance, asset_graph=defs.resolve_asset_graph())
    if args.dry_run:
        steps = expand(defs, instance, args.selection, args.partition, args.all_partitions) if args.selection \
            else jobs.main_plan()
        print(plan_steps(steps, instance))
        return 0
    if args.selection:
        steps = expand(defs, instance, args.selection, args.partition, args.all_partitions)
        report = run_steps(steps, instance=instance, defs=defs, force=args.force, judge_items=args.items,
                           debug=args.debug)
    else:
        report = run_main_job(instance, defs, force=args.force, judge_items=args.items, debug=args.debug)
    total = sum(s for _, _, s in report)
    print(f"{len(report)} steps in {total:.1f}s")
    if not args.selection:
        _print_main_summary()
    return 0


def _print_main_summary() -> None:
    print("\ndistribution-comparison:\n")
    print(render(table_records(_store(), "distribution-comparison", current_profile_name()), "md", short=True))
    for name in ("paper_report.md", "paper_report.html"):
        if (reports_dir() / name).exists():
            print(f"\nreport: {reports_dir() / name}")


def cmd_tables(args) -> int:
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
    path = export_asset(args.asset, args.partition, args.format, args.output, profile=args.profile)
    if path:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_ui(args) -> int:
    home = ensure_dagster_home()
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={home})")
    exe = Path(sys.executable).with_name("dagster")
    return subprocess.call([str(exe), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", args.host,
                            "-p", str(args.port)], cwd=REPO_ROOT)


class _Parser(argparse.ArgumentParser):
    """argparse, reporting a usage error in two lines (what is wrong, where to read more) instead of the
    whole usage text; sub-command parsers are of this class too."""

    def error(self, message: str):
        self.exit(errors.EXIT_USAGE, f"{self.prog}: {message}\n  see: {self.prog} --help\n")


def _output_file(value: str) -> str:
    """`-o PATH`: its folder must exist (checked before any work is done)."""
    folder = Path(value).expanduser().parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist: create it or choose another path")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hlv", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="on failure, print the traceback too (also accepted after the sub-command)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="materialize assets (no selection: the main job of the profile)")
    p.add_argument("selection", nargs="*", help="asset names (default: the main job)")
    p.add_argument("--partition", help="a partition: `<judge>/<explanations>`, `<generator>/<set>`, a plain key, "
                   "or Dagster's key string")
    p.add_argument("--all-partitions", action="store_true",
                   help="every partition of the selected assets that can run now (active LLMs in their role)")
    p.add_argument("--dry-run", action="store_true", help="show the LLM calls, tokens and cost; run nothing")
    p.add_argument("--force", action="store_true", help="build even on an input whose latest blocking check "
                   "failed (uses its last passing version; the run and its rows record it)")
    p.add_argument("--items", type=_positive_int, metavar="N", help="judges judge only the first N items (a "
                   "trial: time a judge before the whole grid; the stored MJD then has N items)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("tables", help="print stored result tables")
    p.add_argument("name", nargs="?", help="distribution-comparison, finetune-comparison, anli-ood, ...")
    p.add_argument("--format", default="md", choices=["md", "json", "csv"])
    p.add_argument("--profile", default=None, choices=settings.PROFILE_NAMES, help="only rows of this profile")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("export", help="write a stored asset out")
    p.add_argument("asset")
    p.add_argument("--partition")
    p.add_argument("--format", default="jsonl", choices=["jsonl", "csv", "parquet", "json", "chaosnli"],
                   help="chaosnli: a fine-tune's test predictions in the ChaosNLI leaderboard format")
    p.add_argument("-o", "--output", type=_output_file, help="file (default: standard output for jsonl/csv/json)")
    p.add_argument("--profile", default=None, choices=settings.PROFILE_NAMES, help="default: HLV_PROFILE")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ui", help="start the Dagster UI with a persistent DAGSTER_HOME under data/")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_ui)

    for register in (items.register, llm.register, audit.register, report.register):
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one `hlv` command and return its exit status; every failure is reported by `cli/errors.py` in one
    to three lines (with the traceback under `--debug`, accepted anywhere on the line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        args = build_parser().parse_args(argv)
        args.debug = debug
        settings.load_settings()  # every setting validated before any work: a wrong one is one line
        return args.func(args) or 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):  # --help, argparse errors, a command's own status
            return exc.code or 0
        return errors.report(exc, debug=debug)
    except (Exception, KeyboardInterrupt) as exc:
        return errors.report(exc, debug=debug)


if __name__ == "__main__":
    sys.exit(main())
