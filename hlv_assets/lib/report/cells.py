"""The cells of the paper-vs-ours tables: number formats, our side of a poster row (`Ours`), the reasons listed
under a table, the report's counters, and the side-by-side table (paper, ours, difference per metric)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hlv_assets.lib import paper_numbers as P
from hlv_assets.lib.report.document import Block, Bullets, Table
from hlv_assets.lib.report.options import N_ITEMS


def fmt(v, nd: int = 3) -> str:
    if v is None:
        return ""
    if isinstance(v, tuple):
        return " / ".join(fmt(x, nd) for x in v)
    return f"{float(v):.{nd}f}"


def delta(ours, paper) -> str:
    if ours is None or paper is None:
        return ""
    if isinstance(paper, tuple):
        return " / ".join(delta(o, p) for o, p in zip(ours, paper, strict=True))
    diff = float(ours) - float(paper)
    return "0.000" if abs(diff) < 0.0005 else f"{diff:+.3f}".replace("-", "−")


def pct(v) -> str:
    return "" if v is None else f"{100 * float(v):.2f} %"


def n_cell(n, total: int = N_ITEMS) -> str:
    if n is None or n == "":
        return ""
    n = int(n)
    return f"{n}" if n >= total else f"{n} of {total} (subset)"


def weights_cell(rec: dict) -> str:
    """Which weights a fine-tune row reports: checkpoint selection, seeds (several: mean ± sd) and precision,
    e.g. `final, seed 42, fp32`."""
    seeds = [str(s) for s in rec.get("seeds") or []]
    seed_part = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {','.join(seeds)} (mean ± sd)"
    return f"{rec.get('selection') or 'selection not recorded'}, {seed_part}, {rec.get('precision') or 'fp32'}"


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


def side_by_side(first: str, rows: Sequence[tuple[P.PaperRow | str, dict, Ours]],
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
            show = pct if key == "share" else fmt
            if key == "share" and pv is None and "share" not in ours.values:  # not a selection row
                cells += ["", "", ""]
                continue
            if ov is None or key in ours.blank:
                stats.missing += 1
                reason = ours.blank.get(key) or ours.reason or "n/a: not in the stored row"
                cells += [show(pv) + marks.get((id(row), key), ""), reason, ""]
                continue
            stats.ours += 1
            if key == "share":
                change = "" if pv is None else f"{100 * (ov - pv):+.2f} pp".replace("-", "−")
            else:
                change = delta(ov, pv)
            cells += [show(pv) + marks.get((id(row), key), ""), show(ov), change]
        cells += [ours.n, ours.ids, ours.partitions]
        out.append(cells)
    return Table(columns, out)


def partition(rec: dict) -> str:
    return str(rec.get("asset_partition") or "")


def best(records: list[dict], conversions: Sequence[str], size_key: str = "n") -> dict | None:
    if not records:
        return None

    def rank(r):
        conv = r.get("conversion")
        ci = list(conversions).index(conv) if conv in conversions else len(conversions)
        return (-(int(r.get(size_key) or 0)), ci)

    return sorted(records, key=rank)[0]
