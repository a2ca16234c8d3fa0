"""The side-by-side paper report: every table of the poster with the paper's values and ours next to them.

Built from plain data (no Dagster run, no store code here): a `StoreView` of the result tables and registered
LLMs, and a `ReportReader` for stored distributions and raw assets; `hlv_assets.store.report_view` makes both
from the results store (`write_report(store, profile)`). Each of our cells carries the stored row's `id` and
asset partition; a cell we cannot fill says why (a short reason in the cell, the full text under the table);
rows on a subset of the 341 items say so (`n`). The figures (one ternary plot, the replacement curve) go to
`figures/` beside the report.

Paper judges are matched to registered LLMs by model id (Llama-3-70B-Instruct, GPT-4o) or given explicitly
(`ReportOptions.judges`); every other judge with stored MJDs is a *stand-in* and gets its own section, never a
paper row. Modules: `document` (blocks, Markdown / HTML), `options` (options, result, judges, inputs),
`figures`, `cells` (formats, side-by-side tables), `context` (row finders), `intro` / `paper_tables` /
`stand_ins` (the sections), `builder` (assembly and writing).
"""

from hlv_assets.lib.report.builder import build_blocks, render_report, report_paths
from hlv_assets.lib.report.document import Block, Bullets, Figure, Heading, Para, Table, to_html, to_markdown
from hlv_assets.lib.report.figures import replacement_figure, ternary_figure
from hlv_assets.lib.report.options import (
    N_ITEMS,
    PAPER_JUDGES,
    REPORT_STEM,
    ReportOptions,
    ReportReader,
    ReportResult,
    StoreView,
    reports_dir,
    resolve_judges,
)

__all__ = [
    "N_ITEMS",
    "PAPER_JUDGES",
    "REPORT_STEM",
    "Block",
    "Bullets",
    "Figure",
    "Heading",
    "Para",
    "ReportOptions",
    "ReportReader",
    "ReportResult",
    "StoreView",
    "Table",
    "build_blocks",
    "render_report",
    "replacement_figure",
    "report_paths",
    "reports_dir",
    "resolve_judges",
    "ternary_figure",
    "to_html",
    "to_markdown",
]
