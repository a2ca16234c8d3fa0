"""Build the report from a store view and a reader (both plain, no store code here), and write it as Markdown
and HTML with its figures beside it (`hlv_assets.store.report_view` feeds it from the results store)."""

from __future__ import annotations

from pathlib import Path

from hlv_assets.lib.report import intro, paper_tables, stand_ins
from hlv_assets.lib.report.context import ReportContext
from hlv_assets.lib.report.document import Block, to_html, to_markdown
from hlv_assets.lib.report.options import (
    REPORT_STEM,
    ReportOptions,
    ReportReader,
    ReportResult,
    StoreView,
    reports_dir,
)

TITLE = "hlv-assets: the paper's numbers and ours"


def build_blocks(view: StoreView, reader: ReportReader, figures_dir: Path, options: ReportOptions | None = None
                 ) -> tuple[list[Block], ReportContext]:
    """The report's blocks (figures written into `figures_dir`) and the context that counted its cells."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    ctx = ReportContext(view, options or ReportOptions(), figures_dir, reader)
    blocks = intro.header(ctx)
    blocks += intro.datasets(ctx)
    blocks += paper_tables.main_table(ctx)
    blocks += stand_ins.ternary(ctx)
    blocks += paper_tables.anli_table(ctx)
    blocks += stand_ins.replacement(ctx)
    blocks += paper_tables.preference(ctx)
    blocks += paper_tables.variability(ctx)
    blocks += stand_ins.stand_ins(ctx)
    return blocks, ctx


def report_paths(path: Path | str | None) -> tuple[Path, Path]:
    """(Markdown, HTML) paths for `path` (default `data/reports/paper_report.md`): a `.html` path is the HTML,
    with the Markdown beside it; any other path is the Markdown, with the HTML beside it."""
    path = Path(path) if path else reports_dir() / f"{REPORT_STEM}.md"
    md_path = path.with_suffix(".md") if path.suffix.lower() in (".html", ".htm") else path
    html_path = path if path.suffix.lower() in (".html", ".htm") else path.with_suffix(".html")
    return md_path, html_path


def render_report(view: StoreView, reader: ReportReader, path: Path | str | None = None,
                  options: ReportOptions | None = None) -> ReportResult:
    """Write the report as Markdown and HTML (see `report_paths`); figures go to `figures/` next to them."""
    md_path, html_path = report_paths(path)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    blocks, ctx = build_blocks(view, reader, md_path.parent / "figures", options)
    markdown = to_markdown(blocks, base=md_path.parent)
    md_path.write_text(markdown, encoding="utf-8")
    html_path.write_text(to_html(blocks, TITLE), encoding="utf-8")
    return ReportResult(md_path, html_path, markdown, to_markdown(blocks, inline_images=True), ctx.figures,
                        ctx.stats.ours, ctx.stats.missing, ctx.stats.subset_rows)
