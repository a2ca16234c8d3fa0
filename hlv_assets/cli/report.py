"""`hlv report [-o PATH]`: the side-by-side paper report (Markdown and HTML) written from the results store.

No Dagster run is needed: the report reads the stored rows, distributions and the LLM registry of the profile
and draws its two figures itself (`hlv_assets.lib.report`, fed by `hlv_assets.store.report_view`).
`paper_report` is the same as an asset.
"""

from __future__ import annotations

import argparse
import sys

from hlv_assets.lib.profiles import current_profile_name
from hlv_assets.lib.report import ReportOptions
from hlv_assets.store.db import get_engine
from hlv_assets.store.report_view import write_report
from hlv_assets.store.results import ResultStore


def cmd_report(args) -> int:
    judges = {}
    for item in args.judge:
        name, sep, slug = item.partition("=")
        if not sep or not slug:
            print(f"hlv report: --judge takes PAPER=SLUG (e.g. Llama3=llama3-70b-vllm), got {item!r}",
                  file=sys.stderr)
            return 2
        judges[name] = slug
    profile = args.profile or current_profile_name()
    options = ReportOptions(judges=judges, set_variant=args.set_variant)
    result = write_report(ResultStore(get_engine()), profile, args.output, options)
    print(f"wrote {result.markdown_path} and {result.html_path} (profile {profile}: {result.our_cells} values of "
          f"ours, {result.missing_cells} cells that say why they are empty, {result.subset_rows} rows on a subset "
          "of the items)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report", help="write the paper's tables beside ours (Markdown + HTML) from the results store",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", help="the Markdown file (default data/reports/paper_report.md); the HTML goes "
                   "beside it with .html (an .html path swaps the two); figures go to figures/ beside them")
    p.add_argument("--profile", help="the profile whose rows to report (default HLV_PROFILE, else demo)")
    p.add_argument("--judge", action="append", default=[], metavar="PAPER=SLUG",
                   help="which registered LLM plays a paper judge (Llama3, GPT-4o); default: matched by model id")
    p.add_argument("--set-variant", default="first", choices=["first", "longest"],
                   help="the selection the paper's '+ model-ex' rows read (the poster does not say)")
    p.set_defaults(func=cmd_report)
