"""The side-by-side paper report: every table of the poster with the paper's values and ours next to them.

Read from the results store only (no Dagster run needed): the result tables (`hlv_assets.tables`), the stored
distributions, the LLM registry and the row counts of the stored raw assets. Each of our cells carries the
stored row's `id` and asset partition; a cell we cannot fill says why (a short reason in the cell, the full
text under the table); rows on a subset of the 341 items say so (`n`). The figures (one ternary plot, the
replacement curve) are drawn from the store too, into `figures/` beside the report.

Paper judges are matched to registered LLMs by model id (Llama-3-70B-Instruct, GPT-4o) or given explicitly
(`ReportOptions.judges`); every other judge with stored MJDs is a *stand-in* and gets its own section, never a
paper row. The document is a list of blocks rendered to Markdown and to self-contained HTML (images inline).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from hlv_assets.lib import paper_numbers as P
from hlv_assets.lib.paths import output_dir

N_ITEMS = 341
REPORT_STEM = "paper_report"
PROB = ["p_e", "p_n", "p_c"]

__all__ = [
    "PAPER_JUDGES",
    "ReportOptions",
    "ReportResult",
    "build_report",
    "replacement_figure",
    "reports_dir",
    "resolve_judges",
    "stored_mjd_partitions",
    "ternary_figure",
    "to_html",
    "to_markdown",
    "write_report",
]


def reports_dir() -> Path:
    """`data/reports` (or `$HLV_HOME/reports`): the report, its figures and the analyses' PNGs."""
    return output_dir() / "reports"


# ------------------------------------------------------------------------------------------------ blocks


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    path: Path
    caption: str


Block = Heading | Para | Bullets | Table | Figure


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _rel(path: Path, base: Path | None) -> str:
    if base is None:
        return str(path)
    try:
        return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def to_markdown(blocks: Sequence[Block], *, base: Path | None = None, inline_images: bool = False) -> str:
    """Markdown; figures link relative to `base` (the report's folder), or are inlined as base64 PNG."""
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {item}" for item in b.items))
        elif isinstance(b, Table):
            lines = ["| " + " | ".join(_md_cell(c) for c in b.columns) + " |",
                     "|" + "---|" * len(b.columns)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        elif isinstance(b, Figure):
            src = _png_uri(b.path) if inline_images else _rel(b.path, base)
            out.append(f"![{b.caption}]({src})\n\n*{b.caption}*")
    return "\n\n".join(out) + "\n"


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*([^*]+)\*(?![\w*])")


def _inline_html(text: str) -> str:
    parts = re.split(r"(`[^`]+`)", str(text))
    out = []
    for part in parts:
        if _CODE.fullmatch(part):
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            escaped = html.escape(part, quote=False)
            escaped = _BOLD.sub(r"<strong>\1</strong>", escaped)
            out.append(_ITALIC.sub(r"<em>\1</em>", escaped))
    return "".join(out)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
code { background: #f5f5f5; padding: 0 0.2em; } figure { margin: 1em 0; } figcaption { font-style: italic; }
img { max-width: 100%; } td.wrap { white-space: normal; min-width: 16em; max-width: 30em; text-align: left; }
div.scroll { overflow-x: auto; }
"""


def _td(cell: str) -> str:
    wrap = ' class="wrap"' if len(str(cell)) > 40 else ""  # long texts wrap, numbers never do
    return f"<td{wrap}>{_inline_html(cell)}</td>"


def to_html(blocks: Sequence[Block], title: str) -> str:
    """One self-contained HTML page (figures inlined)."""
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{_inline_html(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_inline_html(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{_inline_html(c)}</th>" for c in b.columns)
            rows = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in b.rows)
            body.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>')
        elif isinstance(b, Figure):
            body.append(f'<figure><img src="{_png_uri(b.path)}" alt="{html.escape(b.caption)}">'
                        f"<figcaption>{_inline_html(b.caption)}</figcaption></figure>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# ------------------------------------------------------------------------------------------------ judges


@dataclass(frozen=True)
class PaperJudge:
    name: str  # as the poster names it
    model: str
    pattern: str  # matched against a registered spec's model id
    generator: str  # slug of the LLM whose explanations the paper's "+ model-ex" rows use
    needs: str


PAPER_JUDGES: dict[str, PaperJudge] = {
    "Llama3": PaperJudge(
        "Llama3", "Llama-3-70B-Instruct", r"llama-?3(\.\d)?-70b", "llama3",
        "Llama-3-70B-Instruct as the judge (bf16, about 140 GB of GPU memory: a `vllm` spec, see the examples at "
        "the end of `hlv_assets/llm/llms.yaml`)"),
    "GPT-4o": PaperJudge(
        "GPT-4o", "GPT-4o", r"gpt-?4o", "gpt4o",
        "GPT-4o as the judge through the OpenAI API with top log-probabilities (an `openai` spec whose key is in "
        "the environment variable it names)"),
}


def _judge_specs(llms: Iterable[dict]) -> list[dict]:
    return [s for s in llms if "label_logits" in (s.get("capabilities") or ()) and s.get("backend") != "released"]


def resolve_judges(llms: Iterable[dict], overrides: dict[str, str] | None = None) -> dict[str, str | None]:
    """Paper judge name -> the registered slug that plays it (by model id, or `overrides`), else None."""
    specs = _judge_specs(llms)
    out: dict[str, str | None] = {}
    for name, judge in PAPER_JUDGES.items():
        if overrides and overrides.get(name):
            out[name] = overrides[name]
            continue
        hits = sorted(s["slug"] for s in specs if re.search(judge.pattern, str(s.get("model", "")), re.I))
        out[name] = hits[0] if hits else None
    return out


# ------------------------------------------------------------------------------------------------ the store


@dataclass
class StoreView:
    profile: str
    tables: dict[str, list[dict]]
    llms: list[dict]
    db: str = ""

    def rows(self, name: str, **match) -> list[dict]:
        return [r for r in self.tables.get(name, []) if all(r.get(k) == v for k, v in match.items())]


def load_view(store, profile: str) -> StoreView:
    from hlv_assets.store import registry
    from hlv_assets.store.db import redact
    from hlv_assets.tables import TABLES, table_records

    tables = {name: table_records(store, name, profile) for name in TABLES}
    llms = [{**e.spec, "active": e.active} for e in registry.entries(store.engine)]
    return StoreView(profile, tables, llms, db=redact(str(store.engine.url)))


def stored_mjd_partitions(store, profile: str) -> list[dict]:
    """Every stored MJD (judge, explanations, conversion, partition key, n) of the profile."""
    from sqlmodel import Session, func, select

    from hlv_assets.store.models import DistributionRow

    with Session(store.engine) as session:
        q = (select(DistributionRow.asset_key, DistributionRow.partition_key, func.count())
             .where(DistributionRow.asset_key.like("mjd:%"), DistributionRow.current == True,  # noqa: E712
                    DistributionRow.profile == profile)
             .group_by(DistributionRow.asset_key, DistributionRow.partition_key))
        found = list(session.exec(q))
    out = []
    for asset_key, partition_key, n in found:
        if "|" not in partition_key:
            continue
        explanations, judge = partition_key.split("|", 1)
        out.append({"judge": judge, "explanations": explanations, "conversion": asset_key.split(":", 1)[1],
                    "partition_key": partition_key, "n": int(n)})
    return sorted(out, key=lambda d: (d["judge"], d["explanations"], d["conversion"]))


def _asset_file(asset: str, profile: str) -> Path:
    return output_dir() / "assets" / profile / f"{asset}.parquet"


# ------------------------------------------------------------------------------------------------ figures


def replacement_figure(records: Sequence[dict], judge: str, *, conversion: str = "softmax", metric: str = "kl",
                       path: Path | str | None = None) -> bytes | None:
    """The replacement curves (model vs noise, metric against r) of one judge from `replacement` rows; None
    when the judge has no rows of that conversion."""
    from hlv_assets.lib.ternary import replacement_curve_png

    rows = [r for r in records if r.get("judge") == judge and r.get("conversion") == conversion]
    # rounded to the tables' precision: differences below 1e-5 are noise, and matplotlib would otherwise draw
    # them with an offset axis (the tiny profile's random judge gives near-constant curves)
    curves = {kind: {int(r["r"]): round(float(r[metric]), 5) for r in rows if r.get("kind") == kind}
              for kind in ("model", "noise")}
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    none = [r for r in rows if r.get("kind") == "none"]
    reference = {"no explanations": round(float(none[0][metric]), 5)} if none else None
    n = max(int(r.get("n") or 0) for r in rows)
    model_set = next((r.get("model_set") for r in rows if r.get("model_set")), "")
    profile = next((r.get("profile") for r in rows if r.get("profile")), "")
    title = f"{judge}: {metric.upper()} to the HJD, n = {n} items ({conversion}), profile {profile}"
    if model_set:
        title += f"\nmodel explanations: {model_set}"
    values = [v for c in curves.values() for v in c.values()] + list((reference or {}).values())
    spread = max(values) - min(values)
    if spread < 0.01:  # matplotlib zooms in on any spread: say how small it is
        title += f"\n(all values lie within {spread:.5f} of each other)"
    return replacement_curve_png(curves, metric=f"{metric.upper()} (mean over items)", path=path,
                                 reference=reference, title=title)


def ternary_figure(hjd: pd.DataFrame, mjd: pd.DataFrame, *, title: str, path: Path | str | None = None) -> bytes:
    """HJD and MJD of the MJD's items on one ternary diagram (each item's two points linked)."""
    from hlv_assets.lib.ternary import ternary_png

    ref = hjd.set_index("uid")
    missing = [u for u in mjd.uid if u not in ref.index]
    if missing:
        raise KeyError(f"{len(missing)} MJD items have no HJD: {missing[:3]}")
    return ternary_png(ref.loc[list(mjd.uid), PROB].to_numpy(), mjd[PROB].to_numpy(), path=path, title=title,
                       names=("HJD (ChaosNLI)", "MJD"))


# ------------------------------------------------------------------------------------------------ cells


@dataclass(frozen=True)
class ReportOptions:
    """Choices of the report. `judges`: paper judge ("Llama3", "GPT-4o") -> our slug (default: the registered
    LLM whose model id matches). `set_variant`: which selection the paper's "+ model-ex" rows read (first /
    longest; the poster does not say, *our reading*: first). `conversions`: preference order of MJD
    conversions for the paper rows (normalize = as published)."""

    judges: dict = field(default_factory=dict)
    set_variant: str = "first"
    conversions: tuple[str, ...] = ("normalize", "softmax")
    figure_metric: str = "kl"
    figure_conversion: str = "softmax"


def _f(v, nd: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, tuple):
        return " / ".join(_f(x, nd) for x in v)
    return f"{float(v):.{nd}f}"


def _d(ours, paper) -> str:
    if ours is None or paper is None:
        return ""
    if isinstance(paper, tuple):
        return " / ".join(_d(o, p) for o, p in zip(ours, paper, strict=True))
    diff = float(ours) - float(paper)
    return "0.000" if abs(diff) < 0.0005 else f"{diff:+.3f}".replace("-", "−")


def _pct(v) -> str:
    return "" if v is None else f"{100 * float(v):.2f} %"


def _n_cell(n, total: int = N_ITEMS) -> str:
    if n is None or n == "":
        return ""
    n = int(n)
    return f"{n}" if n >= total else f"{n} of {total} (subset)"


@dataclass
class Ours:
    """Our side of one poster row: values per metric key, or a short reason why there are none."""

    values: dict = field(default_factory=dict)
    n: str = ""
    ids: str = ""
    partitions: str = ""
    reason: str | None = None
    #: metric -> reason, for values that exist but must not be compared (e.g. from a fake embedder)
    blank: dict = field(default_factory=dict)


class Reasons:
    """Short reasons shown in the cells of one table, listed under it in full (the first time a reason appears
    in the report; later tables refer back to it)."""

    def __init__(self, seen: set[str]):
        self.items: dict[str, str] = {}
        self.seen = seen

    def add(self, short: str, long: str) -> str:
        self.items.setdefault(short, long)
        return short

    def block(self) -> list[Block]:
        if not self.items:
            return []
        lines = []
        for short, long in self.items.items():
            lines.append(f"**{short}**: " + ("see above." if short in self.seen else long))
            self.seen.add(short)
        return [Bullets(lines)]


@dataclass
class Stats:
    ours: int = 0
    missing: int = 0
    subset_rows: int = 0


def _side_by_side(first: str, rows: Sequence[tuple[P.PaperRow | str, dict, Ours]],
                  metrics: Sequence[tuple[str, str]], stats: Stats, marks: dict | None = None) -> Table:
    """Columns: row, then (paper, ours, Δ) per metric, then n, id, asset partition. `marks[(id(row), metric)]`
    is appended to a paper value (e.g. † for the discrepancies). A `share` metric is shown in percent."""
    marks = marks or {}
    columns = [first]
    for _, header in metrics:
        columns += [f"{header} paper", f"{header} ours", "Δ"]
    columns += ["n", "id", "asset partition"]
    out = []
    for row, paper, ours in rows:
        cells = [row.label if isinstance(row, P.PaperRow) else row]
        for key, _ in metrics:
            pv, ov = paper.get(key), ours.values.get(key)
            fmt = _pct if key == "share" else _f
            if key == "share" and pv is None and "share" not in ours.values:  # not a selection row
                cells += ["", "", ""]
                continue
            if ov is None or key in ours.blank:
                stats.missing += 1
                reason = ours.blank.get(key) or ours.reason or "n/a: not in the stored row"
                cells += [fmt(pv) + marks.get((id(row), key), ""), reason, ""]
                continue
            stats.ours += 1
            if key == "share":
                delta = "" if pv is None else f"{100 * (ov - pv):+.2f} pp".replace("-", "−")
            else:
                delta = _d(ov, pv)
            cells += [fmt(pv) + marks.get((id(row), key), ""), fmt(ov), delta]
        cells += [ours.n, ours.ids, ours.partitions]
        out.append(cells)
    return Table(columns, out)


def _partition(rec: dict) -> str:
    return str(rec.get("asset_partition") or "")


def _best(records: list[dict], conversions: Sequence[str], size_key: str = "n") -> dict | None:
    if not records:
        return None

    def rank(r):
        conv = r.get("conversion")
        ci = list(conversions).index(conv) if conv in conversions else len(conversions)
        return (-(int(r.get(size_key) or 0)), ci)

    return sorted(records, key=rank)[0]


# ------------------------------------------------------------------------------------------------ the report


class _Builder:
    def __init__(self, view: StoreView, options: ReportOptions, figures_dir: Path, store):
        self.view = view
        self.options = options
        self.figures_dir = figures_dir
        self.store = store
        self.judges = resolve_judges(view.llms, options.judges)
        self.stats = Stats()
        self.figures: dict[str, Path] = {}
        self.judge_slugs = sorted(s["slug"] for s in _judge_specs(view.llms))
        self.seen: set[str] = set()

    # ---- row finders ----------------------------------------------------------------------------------
    def explanations_of(self, paper: P.PaperRow) -> str | None:
        e = paper.explanations
        if e in (None, "none", "human"):
            return e
        generator = PAPER_JUDGES[paper.judge].generator
        return f"{generator}.{e}-{self.options.set_variant}"

    def judge_reason(self, reasons: Reasons, name: str) -> str:
        judge = PAPER_JUDGES[name]
        others = ", ".join(self.judge_slugs) or "none"
        return reasons.add(
            f"n/a: no {name} judge",
            f"the poster's {name} rows need {judge.needs}. No registered LLM with label logits matches "
            f"{judge.model} (registered judges: {others}; `hlv llm list`). Register one, materialize its `mjd` "
            "partitions, and these cells fill in; the stand-in judge's rows are in the section "
            "*Stand-in judge and encoder*.")

    def dist_ours(self, paper: P.PaperRow, reasons: Reasons) -> tuple[Ours, dict | None]:
        if paper.kind == "baseline":
            rec = _best([r for r in self.view.rows("distribution-comparison", source=paper.source)
                         if not r.get("llm")], ())
            if rec is None:
                return Ours(reason=reasons.add("not run: distribution_comparison",
                                               "materialize `baseline_distributions` and "
                                               "`distribution_comparison` (hlv run)")), None
        else:
            slug = self.judges.get(paper.judge)
            if slug is None:
                return Ours(reason=self.judge_reason(reasons, paper.judge)), None
            src = self.explanations_of(paper)
            rec = _best(self.view.rows("distribution-comparison", source="mjd", llm=slug, explanations=src),
                        self.options.conversions)
            if rec is None:
                return Ours(reason=reasons.add(f"not run: mjd[{slug}/{src}]",
                                               f"materialize `mjd` and `mjd_comparison` for `{slug}/{src}`")), None
        return self._ours(rec, P.DIST_METRICS), rec

    def _ours(self, rec: dict, keys: Iterable[str], n_key: str = "n") -> Ours:
        n = rec.get(n_key)
        if n is not None and int(n) < N_ITEMS:
            self.stats.subset_rows += 1
        conv = f" ({rec['conversion']})" if rec.get("conversion") else ""
        return Ours({k: rec.get(k) for k in keys}, _n_cell(n), rec["id"] + conv, _partition(rec))

    def finetune_ours(self, paper: P.PaperRow, family: str, reasons: Reasons, table: str) -> Ours:
        """Our row of `table` (finetune-comparison or anli-ood) for a poster row and an encoder family."""
        env = {"BERT": "HLV_BERT_MNLI", "RoBERTa": "HLV_ROBERTA_MNLI"}[family]
        match = {"encoder": family}
        if paper.kind == "baseline":
            match["source"] = paper.source
        elif paper.kind == "mjd":
            slug = self.judges.get(paper.judge)
            if slug is None:
                return Ours(reason=self.judge_reason(reasons, paper.judge))
            match.update(source="mjd", llm=slug, explanations=self.explanations_of(paper))
        else:
            match["source"] = paper.source
        if not self.view.rows(table, encoder=family):
            return Ours(reason=reasons.add(
                f"n/a: no {family} checkpoint",
                f"{family} fine-tunes start from an MNLI-fine-tuned {family} checkpoint that you supply ({env}: "
                "a path or model id; MNLI training takes hours on a GPU). None is stored for this profile; the "
                "embedded MiniLM stand-in encoder's rows are in the section *Stand-in judge and encoder*."))
        rec = _best(self.view.rows(table, **match), self.options.conversions, size_key="n_train")
        if rec is None:
            what = "/".join(str(match.get(k)) for k in ("source", "llm", "explanations") if match.get(k))
            return Ours(reason=reasons.add(f"not run: finetune_{family.lower()}[{what}]",
                                           f"materialize the {family} fine-tune of `{what}`"))
        if table == "finetune-comparison":
            values = {m: (rec.get(f"dev_{m}"), rec.get(f"test_{m}")) for m in P.FT_METRICS}
            values = {k: (None if None in v else v) for k, v in values.items()}
            ours = Ours(values, _n_cell(rec.get("n_train")), rec["id"], _partition(rec))
        else:
            ours = Ours({r: rec.get(f"{r}_weighted_f1") for r in P.ANLI_COLUMNS}, _n_cell(rec.get("n_train")),
                        rec["id"], _partition(rec))
        if rec.get("n_train") is not None and int(rec["n_train"]) < N_ITEMS:
            self.stats.subset_rows += 1
        return ours

    # ---- sections -------------------------------------------------------------------------------------
    def header(self) -> list[Block]:
        from hlv_assets.lib.profiles import PROFILES

        prof = PROFILES.get(self.view.profile)
        counts = ", ".join(f"{name} {len(rows)}" for name, rows in self.view.tables.items() if rows) or "none"
        judges = ", ".join(f"{k} → `{v}`" if v else f"{k} → not registered" for k, v in self.judges.items())
        blocks: list[Block] = [
            Heading("A Rose by Any Other Name: the paper's numbers and ours", 1),
            Para(f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from the results store `{self.view.db}`, "
                 f"profile **{self.view.profile}**. Stored rows: {counts}. Paper judges: {judges}."),
            Para("Each poster table (Chen et al., Findings of ACL 2025; values transcribed in "
                 "`hlv_assets/lib/paper_numbers.py`) is shown with the paper's value, ours and the difference "
                 "(ours − paper) side by side. Every value of ours names its stored row (`id`, see `hlv tables`) "
                 "and the asset partition that wrote it. A cell we cannot compute says why in a few words; the "
                 "full reason is listed under the table. `n` is the number of the 341 items a row was computed "
                 "on: fewer than 341 is a subset (the profile's), and such numbers are not comparable to the "
                 "paper's."),
        ]
        if prof is not None:
            blocks.append(Para(
                f"Profile {prof.name}: judges see {prof.mjd_items or 341} items with "
                f"{prof.explanation_orders or 'all'} explanation order(s) per item; fine-tunes run "
                f"{prof.finetune_epochs} epoch(s), seeds {list(prof.finetune_seeds)}, evaluated on "
                f"{prof.eval_items or 'all'} items per split."))
        return blocks

    def datasets(self) -> list[Block]:
        rows = []
        files = {a: _asset_file(a, self.view.profile) for a in ("chaosnli_mnli", "varierr_nli", "anli_test",
                                                                 "hlv_items")}
        frames = {a: pd.read_parquet(p) if p.exists() else None for a, p in files.items()}
        n341 = len(frames["hlv_items"]) if frames["hlv_items"] is not None else None

        def have(a, text):
            return text if frames[a] is not None else f"not materialized: {a}"

        anli = frames["anli_test"]
        anli_counts = ""
        anli_overlap = ""
        if anli is not None:
            sizes = anli.groupby("round").size()
            anli_counts = ", ".join(f"{v:,} ({k})" for k, v in sizes.items())
            if frames["hlv_items"] is not None:
                def key(df):
                    return set(("".join(p.split()), "".join(h.split())) for p, h in zip(df.premise, df.hypothesis))

                anli_overlap = str(len(key(anli) & key(frames["hlv_items"])))
        def per_item(a: str, column: str) -> str:
            frame = frames[a]
            if frame is None:
                return f"not materialized: {a}"
            sums = sorted({int(sum(v)) for v in frame[column]})
            return " or ".join(str(x) for x in sums)

        ours = {
            "MNLI (Williams et al., 2018)": (
                "not in the data pack: MNLI enters through ChaosNLI's copy of its original labels",
                per_item("chaosnli_mnli", "original_counts"), have("hlv_items", str(n341)), "hlv_items"),
            "ChaosNLI (Nie et al., 2020a)": (
                have("chaosnli_mnli", f"{len(frames['chaosnli_mnli']):,} (MNLI part)"
                     if frames["chaosnli_mnli"] is not None else ""), per_item("chaosnli_mnli", "hjd_counts"),
                have("hlv_items", str(n341)), "chaosnli_mnli"),
            "VariErr NLI (Weber-Genzel et al., 2024)": (
                have("varierr_nli", f"{len(frames['varierr_nli']):,}" if frames["varierr_nli"] is not None
                     else ""), per_item("hlv_items", "varierr_counts") + " (round 1, on the 341)",
                have("hlv_items", str(n341)), "varierr_nli"),
            "ANLI test (Nie et al., 2020a)": (have("anli_test", anli_counts), have("anli_test", "1 (gold label)"),
                                              have("anli_test", anli_overlap), "anli_test"),
        }
        for name, (inst, ann, expl, overlap) in P.DATASET_TABLE.items():
            o_inst, o_ann, o_overlap, asset = ours[name]
            rows.append([name, inst, o_inst, ann, o_ann, expl, str(overlap), o_overlap, asset])
        return [Heading("Datasets (Introduction & Method)"),
                Table(["dataset", "instances paper", "instances ours", "annotations paper", "annotations ours",
                       "explanations", "valid overlap paper", "valid overlap ours", "asset"], rows),
                Para("Valid overlap = the items of the 341 (VariErr items with exactly 4 round-1 explanations, "
                     "intersected with ChaosNLI-MNLI); ours counts the stored `hlv_items` (and, for ANLI, the "
                     "items whose premise and hypothesis equal one of the 341).")]

    def main_table(self) -> list[Block]:
        reasons = Reasons(self.seen)
        rows, marks = [], {}
        for paper in P.MAIN_TABLE:
            ours, _ = self.dist_ours(paper, reasons)
            if paper.kind == "baseline":
                for src, metric in P.DISCREPANCIES:
                    if paper.source == src:
                        marks[(id(paper), metric)] = " †"
            rows.append((paper, paper.values, ours))
        dist = _side_by_side("distribution", rows, [("kl", "KL"), ("jsd", "JSD"), ("tvd", "TVD"),
                                                    ("dcor", "D.Corr")], self.stats, marks)
        blocks: list[Block] = [
            Heading("Can model explanations help LLMs approximate HJD as humans do?"),
            Heading("Distribution comparison against the ChaosNLI HJD", 3), dist, *reasons.block(),
            *self.discrepancy_note()]
        for family in ("BERT", "RoBERTa"):
            reasons = Reasons(self.seen)
            ft_rows = []
            for paper in P.MAIN_TABLE:
                pv = {m: paper.values[f"{family.lower()}_{m}"] for m in P.FT_METRICS}
                ft_rows.append((paper, pv, self.finetune_ours(paper, family, reasons, "finetune-comparison")))
            table = _side_by_side("distribution", ft_rows, [("kl_published", "KL (dev / test)"),
                                                            ("ce_loss", "CE (dev / test)"),
                                                            ("weighted_f1", "weighted F1 (dev / test)")],
                                  self.stats)
            blocks += [Heading(f"{family} fine-tuning comparison (ChaosNLI dev / test)", 3), table,
                       *reasons.block()]
        blocks.append(Para("Fine-tuning KL is the published `F.kl_div(log_softmax, HJD, reduction='mean')` "
                           "(= per-item KL / 3); `n` is the number of the 341 items trained on."))
        return blocks

    def discrepancy_note(self) -> list[Block]:
        lines = []
        for src in ("varierr", "mnli"):
            rec = _best([r for r in self.view.rows("distribution-comparison", source=src) if not r.get("llm")], ())
            paper = next(p for p in P.MAIN_TABLE if p.source == src)
            for metric in ("kl", "jsd", "tvd"):
                ours = f"{rec[metric]:.5f}" if rec and rec.get("n") == N_ITEMS else "not stored"
                flag = "does not follow from the data" if (src, metric) in P.DISCREPANCIES else "agrees"
                lines.append(f"{paper.label} {metric.upper()}: poster {paper.values[metric]:.3f}, recomputed "
                             f"(SPEC §7) {P.RECOMPUTED[src][metric]:.5f}, ours {ours}: {flag}")
        return [Para("† **The poster's VariErr TVD (0.296) and MNLI JSD / TVD (0.281 / 0.295) do not follow from "
                     "the released data.** Recomputing the baselines from the released counts with the "
                     "definitions of SPEC §4 (KL(HJD ‖ Q) with clipping at 1e-10, JSD = scipy's Jensen-Shannon "
                     "distance with the natural log, TVD = ½ Σ|p − q|) gives VariErr KL 3.60366, JSD 0.28215, "
                     "TVD 0.28581 and MNLI KL 1.24249, JSD 0.20921, TVD 0.21472. The KL values and the VariErr "
                     "JSD agree with the poster; no variant of the definitions we tried gives the other three, "
                     "which are most likely transcription errors (the MNLI JSD and TVD equal the VariErr ones "
                     "to within 0.001). Our baseline rows are the recomputed values."),
                Bullets(lines)]

    def anli_table(self) -> list[Block]:
        blocks: list[Block] = [Heading("Can model explanations enhance performance on the OOD ANLI test set?"),
                               Para("Weighted F1 against the gold label on ANLI v1.0 test R1 / R2 / R3 "
                                    "(*our reading* of the metric).")]
        for family in ("BERT", "RoBERTa"):
            reasons = Reasons(self.seen)
            rows = []
            for paper in P.ANLI_TABLE:
                pv = {r: paper.values[f"{family.lower()}_{r}"] for r in P.ANLI_COLUMNS}
                rows.append((paper, pv, self.finetune_ours(paper, family, reasons, "anli-ood")))
            blocks += [Heading(f"{family} on ANLI test", 3),
                       _side_by_side("trained classifier", rows, [("r1", "R1"), ("r2", "R2"), ("r3", "R3")],
                                     self.stats),
                       *reasons.block()]
        return blocks

    def replacement(self) -> list[Block]:
        records = self.view.tables.get("replacement", [])
        blocks: list[Block] = [
            Heading("Human versus model: are they different and does it matter?"),
            Para("The poster shows this analysis as two figures only ((a) human explanations gradually replaced "
                 "by model explanations, (b) by noise explanations), so there are no paper numbers to put next "
                 "to ours. *Our reading* (SPEC §6): r of the 4 human explanations of an item are replaced by the "
                 "model explanation of the same label and slot (r = 4 is the VariErr-LG set), or by a seeded "
                 "noise explanation (another item's explanation of the same label); the MJD of each r is "
                 "compared with the HJD.")]
        if not records:
            return blocks + [Para("Not computed: no `replacement` rows are stored for this profile "
                                  "(materialize `replacement_curves[<judge>]`).")]
        judge = self.judges.get("Llama3")
        judges = sorted({r["judge"] for r in records})
        if judge not in judges:
            judge = judges[0]
        conv = self.options.figure_conversion
        if not any(r.get("conversion") == conv for r in records if r["judge"] == judge):
            conv = next(r["conversion"] for r in records if r["judge"] == judge)
        path = self.figures_dir / "replacement.png"
        if replacement_figure(records, judge, conversion=conv, metric=self.options.figure_metric, path=path):
            self.figures["replacement"] = path
            stand_in = "" if judge in self.judges.values() else " (a stand-in judge, not the paper's)"
            blocks.append(Figure(path, f"Replacement curves of judge {judge}{stand_in}: "
                                       f"{self.options.figure_metric.upper()} to the HJD against r ({conv})."))
        rows = []
        for r in sorted((r for r in records if r.get("conversion") == conv),
                        key=lambda r: (r["judge"], r["kind"], r.get("r") if r.get("r") is not None else -1)):
            if int(r.get("n") or 0) < N_ITEMS:
                self.stats.subset_rows += 1
            self.stats.ours += 4
            rows.append([r["judge"], r["kind"], "" if r.get("r") is None else str(r["r"]), _n_cell(r.get("n")),
                         _f(r.get("kl")), _f(r.get("jsd")), _f(r.get("tvd")), _f(r.get("dcor")), r["id"],
                         _partition(r)])
        blocks.append(Table(["judge", "kind", "r", "n", "KL", "JSD", "TVD", "D.Corr", "id", "asset partition"],
                            rows))
        return blocks

    def preference(self) -> list[Block]:
        reasons = Reasons(self.seen)
        records = self.view.tables.get("preference-selection", [])
        slug = self.judges.get("Llama3")
        rows = []
        for paper in P.PREFERENCE_TABLE:
            values, ids, parts, n, reason = {}, [], [], "", None
            if paper.kind == "preference":
                sel = [r for r in records if r.get("kind") == "selection" and r.get("set") == paper.explanations]
                if sel:
                    values["share"] = sel[0].get("filled_share")
                    ids.append(sel[0]["id"] + " (share)")
                    parts.append(_partition(sel[0]))
            if slug is None:
                reason = self.judge_reason(reasons, "Llama3")
            else:
                rec = _best([r for r in records if r.get("kind") == "mjd" and r.get("judge") == slug
                             and r.get("set") == paper.explanations], self.options.conversions)
                if rec is None:
                    reason = reasons.add(f"not run: preference_selection[{slug}]",
                                         f"materialize `preference_selection[{slug}]`")
                else:
                    values.update({k: rec.get(k) for k in P.DIST_METRICS})
                    ids.append(f"{rec['id']} ({rec.get('conversion')})")
                    parts.append(_partition(rec))
                    n = _n_cell(rec.get("n"), 100)
            if paper.kind == "preference" and "share" not in values:
                values["share"] = None
                reason = reason or reasons.add("not run: preference_selection",
                                               "materialize `preference_selection[<judge>]`")
            rows.append((paper, paper.values, Ours(values, n, ", ".join(ids), ", ".join(parts), reason)))
        table = _side_by_side("distributions (Llama3 judge)", rows,
                              [("share", "share"), ("kl", "KL"), ("jsd", "JSD"), ("tvd", "TVD"),
                               ("dcor", "D.Corr")], self.stats)
        ft_reasons = Reasons(self.seen)
        short = ft_reasons.add("n/a: no fine-tune on preference MJDs",
                               "the pipeline does not fine-tune on the preference-selected MJDs (they are rows "
                               "of `preference_selection`, not `mjd` partitions), and RoBERTa needs an MNLI "
                               "checkpoint you supply (HLV_ROBERTA_MNLI)")
        ft_rows = [(paper, {m: paper.values[f"roberta_{m}"] for m in P.FT_METRICS}, Ours(reason=short))
                   for paper in P.PREFERENCE_TABLE]
        ft = _side_by_side("distributions", ft_rows, [("kl_published", "KL (dev / test)"),
                                                      ("ce_loss", "CE (dev / test)"),
                                                      ("weighted_f1", "weighted F1 (dev / test)")], self.stats)
        return [Heading("Can human preference lead to better explanation selection?"),
                Para("Items 0-99 (the ones whose Llama3 explanations were validated by humans). *Share* = the "
                     "share of the 400 human-explanation slots that a matching (preferred / unpreferred) model "
                     "explanation filled; the rest keep their human explanation (*our reading*; SPEC §6 notes "
                     "the poster's percentages could not be re-derived from the released workbook). `n` counts "
                     "the items the MJDs were computed on, of 100."),
                table, *reasons.block(),
                Heading("RoBERTa fine-tuning on the preference MJDs (dev / test)", 3), ft, *ft_reasons.block()]

    def variability(self) -> list[Block]:
        reasons = Reasons(self.seen)
        records = self.view.tables.get("variability", [])
        rows = []
        for paper in P.VARIABILITY_TABLE:
            cands = [r for r in records if r.get("set") == paper.source and r.get("scope") == "within"]
            rec = max(cands, key=lambda r: int(r.get("n") or 0)) if cands else None
            if rec is None:
                ours = Ours(reason=reasons.add("not run: explanation_variability",
                                               "materialize `explanation_variability`"))
            else:
                ours = Ours({k: rec.get(k) for k in P.VARIABILITY_COLUMNS},
                            _n_cell(rec.get("n"), 100 if paper.source != "human" else N_ITEMS),
                            rec["id"], _partition(rec))
                if rec.get("embedder_fake"):
                    short = reasons.add("n/a: fake embedder", f"the row was computed with `{rec.get('embedder')}`, "
                                        "a stand-in for all-MiniLM-L6-v2 (the tiny profile's); its semantic "
                                        "similarities (and the average over all eight) are not comparable")
                    ours.blank = {k: short for k in ("cos", "euc", "avg")}
            rows.append((paper, paper.values, ours))
        metrics = [(k, k) for k in P.VARIABILITY_COLUMNS]
        blocks: list[Block] = [
            Heading("Variability of the explanation sets", 3),
            Para("Similarities within each item's explanations (higher = less variable), mean over items "
                 "(*our reading* of Giulianelli et al. 2023, `hlv_assets/lib/variability.py`): lex1-3 = Dice "
                 "overlap of distinct word n-grams, syn1-3 = the same on universal POS tags (spaCy), cos = "
                 "cosine similarity and euc = 1 / (1 + Euclidean distance) of all-MiniLM-L6-v2 sentence "
                 "embeddings, avg = mean of the eight."),
            _side_by_side("explanations", rows, metrics[:6], self.stats),
            _side_by_side("explanations", rows, metrics[6:], self.stats), *reasons.block(),
            Para("The poster's AVG column is not the mean of its eight columns ("
                 + "; ".join(f"{p.label}: mean {sum(p.values[k] for k in P.VARIABILITY_COLUMNS[:8]) / 8:.3f}, "
                             f"AVG {p.values['avg']:.3f}" for p in P.VARIABILITY_TABLE)
                 + "); ours is the mean of our eight, so the avg columns do not compare like for like.")]
        other = [r for r in records if r.get("set") not in {p.source for p in P.VARIABILITY_TABLE}
                 or r.get("scope") != "within"]
        if other:
            t_rows = []
            for r in sorted(other, key=lambda r: (r["set"], r["scope"])):
                self.stats.ours += len(P.VARIABILITY_COLUMNS)
                t_rows.append([r["set"], r["scope"], _n_cell(r.get("n"))]
                              + [_f(r.get(k)) for k in P.VARIABILITY_COLUMNS] + [r["id"]])
            blocks += [Para("Model explanation sets (not on the poster): within the set, and between the set and "
                            "the human explanations of the same items (every human × model pair)."),
                       Table(["set", "scope", "n", *P.VARIABILITY_COLUMNS, "id"], t_rows)]
        return blocks

    def stand_ins(self) -> list[Block]:
        paper_slugs = {v for v in self.judges.values() if v}
        mjd_rows = [r for r in self.view.rows("distribution-comparison", source="mjd")
                    if r.get("llm") not in paper_slugs]
        blocks: list[Block] = [
            Heading("Stand-in judge and encoder"),
            Para("Rows computed with models that are not the paper's (the embedded SmolLM2-135M-Instruct judge, "
                 "the embedded all-MiniLM-L6-v2 encoder, or the random tiny models of the `tiny` profile). They "
                 "show that each step of the method runs end to end; they are **not** a reproduction of the "
                 "paper's numbers, which are shown for orientation only (no difference is computed).")]
        kinds = {"none": "Llama3 MJD", "human": "+ human-ex", "lf": "+ LF model-ex",
                 "varierr-lg": "+ VariErr LG model-ex", "mnli-lg": "+ MNLI LG model-ex"}

        def kind_of(explanations: str) -> str | None:
            if explanations in ("none", "human"):
                return explanations
            m = re.search(r"\.(lf|varierr-lg|mnli-lg)-", explanations or "")
            return m.group(1) if m else None

        paper_by = {(p.explanations): p for p in P.MAIN_TABLE if p.judge == "Llama3"}
        rows = []
        for r in sorted(mjd_rows, key=lambda r: (r["llm"], r["explanations"], r.get("conversion") or "")):
            k = kind_of(r.get("explanations"))
            paper = paper_by.get(k) if k else None
            cells = [r["llm"], r["explanations"], r.get("conversion") or "", _n_cell(r.get("n"))]
            for m in P.DIST_METRICS:
                cells += [_f(r.get(m)), _f(paper.values[m]) if paper else ""]
                self.stats.ours += 1
            uniform = _best([x for x in self.view.rows("distribution-comparison", source="uniform")
                             if x.get("items_sha256") == r.get("items_sha256")], ())
            cells += [_f(uniform.get("kl")) if uniform else "", kinds.get(k, "") if paper else "", r["id"],
                      _partition(r)]
            rows.append(cells)
        if rows:
            cols = ["judge", "explanations", "conversion", "n"]
            for m in ("KL", "JSD", "TVD", "D.Corr"):
                cols += [f"{m} ours", f"{m} paper (Llama3)"]
            blocks += [Heading("Stand-in judges: distribution comparison", 3),
                       Table(cols + ["uniform KL (same items)", "paper row", "id", "asset partition"], rows)]
        else:
            blocks.append(Para("No MJD of a stand-in judge is stored."))
        pref = [r for r in self.view.tables.get("preference-selection", [])
                if r.get("kind") == "mjd" and r.get("judge") not in paper_slugs]
        if pref:
            paper_pref = {p.explanations: p for p in P.PREFERENCE_TABLE}
            p_rows = []
            for r in sorted(pref, key=lambda r: (r["judge"], r.get("conversion") or "", r["set"])):
                paper = paper_pref.get(r["set"])
                cells = [r["judge"], r["set"], r.get("conversion") or "", _n_cell(r.get("n"), 100),
                         _pct(r.get("filled_share")), _pct(paper.values.get("share")) if paper else ""]
                for m in P.DIST_METRICS:
                    cells += [_f(r.get(m)), _f(paper.values[m]) if paper else ""]
                    self.stats.ours += 1
                p_rows.append(cells + [r["id"], _partition(r)])
            cols = ["judge", "explanations", "conversion", "n", "share ours (these items)", "share paper"]
            for m in ("KL", "JSD", "TVD", "D.Corr"):
                cols += [f"{m} ours", f"{m} paper (Llama3)"]
            blocks += [Heading("Stand-in judges: human-preference selection", 3),
                       Table(cols + ["id", "asset partition"], p_rows)]
        ft = [r for r in self.view.tables.get("finetune-comparison", []) if r.get("encoder") not in
              ("BERT", "RoBERTa")]
        if ft:
            paper_ft = {("baseline", p.source): p for p in P.MAIN_TABLE if p.kind == "baseline"}
            f_rows = []
            for r in ft:
                paper = paper_ft.get(("baseline", r.get("source")))
                if r.get("source") == "mjd":
                    paper = paper_by.get(kind_of(r.get("explanations")))
                what = r.get("source") if r.get("source") != "mjd" else f"mjd {r.get('llm')}/{r.get('explanations')}"
                cells = [r.get("encoder", ""), what, _n_cell(r.get("n_train"))]
                for m in P.FT_METRICS:
                    cells += [_f((r.get(f"dev_{m}"), r.get(f"test_{m}"))),
                              _f(paper.values[f"roberta_{m}"]) if paper else ""]
                    self.stats.ours += 1
                f_rows.append(cells + [r["id"], _partition(r)])
            cols = ["encoder", "trained on", "n"]
            for m in ("KL", "CE", "weighted F1"):
                cols += [f"{m} ours (dev / test)", f"{m} paper RoBERTa"]
            blocks += [Heading("Stand-in encoder: fine-tuning comparison", 3), Table(cols + ["id", "asset partition"],
                                                                                     f_rows)]
        anli = [r for r in self.view.tables.get("anli-ood", []) if r.get("encoder") not in ("BERT", "RoBERTa")]
        if anli:
            a_rows = []
            for r in anli:
                what = r.get("source") if r.get("source") != "mjd" else f"mjd {r.get('llm')}/{r.get('explanations')}"
                cells = [r.get("encoder", ""), what] + [_f(r.get(f"{x}_weighted_f1")) for x in P.ANLI_COLUMNS]
                self.stats.ours += 3
                a_rows.append(cells + [r["id"], _partition(r)])
            blocks += [Heading("Stand-in encoder: ANLI test (weighted F1)", 3),
                       Table(["encoder", "trained on", "R1", "R2", "R3", "id", "asset partition"], a_rows)]
        return blocks

    def ternary(self) -> list[Block]:
        parts = stored_mjd_partitions(self.store, self.view.profile)
        if not parts:
            return []
        paper_slugs = [v for v in self.judges.values() if v]

        def rank(p):
            return (p["judge"] not in paper_slugs, p["explanations"] != "human",
                    p["conversion"] != self.options.figure_conversion, -p["n"])

        pick = sorted(parts, key=rank)[0]
        hjd = self.store.distribution("baseline_distributions", "chaosnli", self.view.profile)
        mjd = self.store.distribution(f"mjd:{pick['conversion']}", pick["partition_key"], self.view.profile)
        if hjd.empty or mjd.empty:
            return []
        path = self.figures_dir / "ternary.png"
        title = (f"{pick['judge']} + {pick['explanations']} ({pick['conversion']}), n = {len(mjd)}, "
                 f"profile {self.view.profile}")
        ternary_figure(hjd, mjd, title=title, path=path)
        self.figures["ternary"] = path
        return [Heading("HJD and MJD of the items"),
                Figure(path, f"Each item's HJD (ChaosNLI) and MJD (judge {pick['judge']}, explanations "
                             f"{pick['explanations']}, {pick['conversion']}) on the simplex; `ternary_plots` "
                             "draws one such plot per stored MJD.")]

    def build(self) -> list[Block]:
        blocks = self.header()
        blocks += self.datasets()
        blocks += self.main_table()
        blocks += self.ternary()
        blocks += self.anli_table()
        blocks += self.replacement()
        blocks += self.preference()
        blocks += self.variability()
        blocks += self.stand_ins()
        return blocks


@dataclass
class ReportResult:
    markdown_path: Path
    html_path: Path
    markdown: str
    markdown_inline: str
    figures: dict[str, Path]
    our_cells: int
    missing_cells: int
    subset_rows: int


def build_report(store, profile: str, figures_dir: Path, options: ReportOptions | None = None
                 ) -> tuple[list[Block], _Builder]:
    """The report's blocks (figures written into `figures_dir`)."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    builder = _Builder(load_view(store, profile), options or ReportOptions(), figures_dir, store)
    return builder.build(), builder


def write_report(store, profile: str, path: Path | str | None = None,
                 options: ReportOptions | None = None) -> ReportResult:
    """Write the report as Markdown (`path`, default `data/reports/paper_report.md`) and HTML beside it (a
    `.html` path writes the HTML there and the Markdown beside it); figures go to `figures/` next to them."""
    path = Path(path) if path else reports_dir() / f"{REPORT_STEM}.md"
    md_path = path.with_suffix(".md") if path.suffix.lower() in (".html", ".htm") else path
    html_path = path if path.suffix.lower() in (".html", ".htm") else path.with_suffix(".html")
    md_path.parent.mkdir(parents=True, exist_ok=True)
    blocks, builder = build_report(store, profile, md_path.parent / "figures", options)
    markdown = to_markdown(blocks, base=md_path.parent)
    md_path.write_text(markdown, encoding="utf-8")
    html_path.write_text(to_html(blocks, "hlv-assets: the paper's numbers and ours"), encoding="utf-8")
    return ReportResult(md_path, html_path, markdown, to_markdown(blocks, inline_images=True), builder.figures,
                        builder.stats.ours, builder.stats.missing, builder.stats.subset_rows)
