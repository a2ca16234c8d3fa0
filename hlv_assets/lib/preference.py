"""Human validation of Llama3 explanations (items 0-99) and preference-based replacement (SPEC §6).

The workbook ``mjd_estimator/Model-Explanation/Validated_Llama3_Explanations.xlsx`` (sheet ``Sheet1``) has a
header row, then one row per parsed Llama3 bullet of items 0-99 of ``NLI_explanations.json``, with blank
separator rows between (item, label) blocks. Columns (by position; the header texts are checked by prefix):

====  =====================  ==================================================================
A     ID                     item index 0-99 (line of NLI_explanations.json)
B     Context/Premise        premise (as typed into Excel: item 38 lost its leading apostrophe)
C     Statement/Hypothesis   hypothesis
D     LLM-Label              ``<Label>-<k>``: Entailment / Neutral / Contradiction / NotEntailment, k = bullet
E     LLM-Explanation        the bullet text
F     Q1                     faithful to premise and hypothesis (y/n)
G     Q2                     brings additional relevant information for a reasonable label (y/n)
H     Q3                     the NLI label the explanation supports (E/N/C, ``-`` = none)
====  =====================  ==================================================================

Our reading, every choice a parameter:

* ``NotEntailment-k`` rows are bullets of the *entailment* prompt in which Llama3 argued against entailment
  (the raw output says "why the statement is NOT true"); they keep their E slot (``label_map``).
* y/n and E/N/C/- are read case-insensitively (one Q2 cell holds ``N``); a ``-`` in Q1/Q2 (one Q2 cell, row
  1636) reads as no (``dash_in_yes_no``). A row whose three judgments are all
  blank (sheet row 1351) is kept as *unjudged*: it counts in no share and is never preferred/unpreferred.
  A blank among filled judgments, or any other value, is an error naming the sheet row and column.
* faithful = Q1 y; informative = Q2 y; label-consistent = Q3 equals the label the bullet was generated for.
  **Preferred** = all three (:class:`PreferenceRule` can drop any of them); **unpreferred** = judged and not
  preferred.
* Selection replaces the 4 human explanations (slots) of an item by Llama3 bullets of the same label:
  ``greedy``: slot by slot, the first matching (preferred / unpreferred) bullet of the slot's label in list
  order that this item has not used yet. ``representative``: the bullets of a label are cut into as many
  contiguous, near-equal blocks (``numpy.array_split``) as the item has slots of that label, and the t-th slot
  of the label takes the first matching bullet of block t — the chosen bullets then cover the model's whole
  list rather than its top (with one slot of a label this is greedy). ``aligned``: the t-th slot of a label
  may only take the t-th bullet (the VariErr-LG-first counterpart), if it matches. A slot without a match
  keeps its human explanation (``fallback="human"``), or takes the first unused bullet of its label whatever
  the judgments (``"any"``), or is left out (``"drop"``). The share reported is filled slots / all slots.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hlv_assets.lib.nli import LETTERS, Explanation
from hlv_assets.lib.validation import DataFormatError

__all__ = [
    "DataFormatError",
    "HEADER_PREFIXES",
    "LABEL_MAP",
    "METHODS",
    "POSTER_SHARES",
    "PreferenceRule",
    "SelectionResult",
    "ValidatedExplanation",
    "candidates_by_item",
    "check_against_items",
    "preference_shares",
    "read_validated_explanations",
    "select_explanations",
    "to_frame",
    "validated_path",
]

VALIDATED_RELPATH = Path("mjd_estimator") / "Model-Explanation" / "Validated_Llama3_Explanations.xlsx"

#: Expected header of columns A-H (each header cell must start with this text).
HEADER_PREFIXES: tuple[str, ...] = (
    "ID",
    "Context/Premise",
    "Statement/Hypothesis",
    "LLM-Label",
    "LLM-Explanation",
    "Q1",
    "Q2",
    "Q3",
)
_COLUMN_LETTERS = "ABCDEFGH"

#: LLM-Label name -> letter of the label the bullet was generated for.
LABEL_MAP: dict[str, str] = {"Entailment": "e", "NotEntailment": "e", "Neutral": "n", "Contradiction": "c"}

METHODS: tuple[str, ...] = ("greedy", "representative", "aligned")

#: The poster's slot shares (which/method), which SPEC §6 says could not be re-derived.
POSTER_SHARES: dict[tuple[str, str], float] = {
    ("preferred", "greedy"): 0.7575,
    ("preferred", "representative"): 0.5525,
    ("unpreferred", "greedy"): 0.685,
    ("unpreferred", "representative"): 0.6325,
}

_LABEL_RE = re.compile(r"^\s*([A-Za-z]+)\s*-\s*(\d+)\s*$")


@dataclass(frozen=True)
class ValidatedExplanation:
    """One annotated Llama3 bullet. ``sheet_row`` is the 1-based Excel row."""

    sheet_row: int
    item: int
    premise: str
    hypothesis: str
    llm_label: str  # verbatim, e.g. "NotEntailment-2"
    label_name: str  # "Entailment" | "NotEntailment" | "Neutral" | "Contradiction"
    label: str  # letter e/n/c of the label it was generated for
    position: int  # bullet position k (1-based)
    text: str
    faithful: bool | None  # Q1; None = unjudged
    informative: bool | None  # Q2
    supported: str | None  # Q3 as a letter e/n/c, "-" for none, None = unjudged

    @property
    def judged(self) -> bool:
        return self.faithful is not None

    @property
    def label_consistent(self) -> bool | None:
        return None if self.supported is None else self.supported == self.label

    @property
    def explanation(self) -> Explanation:
        return (self.text, self.label)


@dataclass(frozen=True)
class PreferenceRule:
    """Which judgments make a bullet *preferred* (all required ones must hold)."""

    faithful: bool = True
    informative: bool = True
    label_consistent: bool = True

    def preferred(self, x: ValidatedExplanation) -> bool | None:
        """True / False for a judged bullet, None for an unjudged one."""
        if not x.judged:
            return None
        return (
            (not self.faithful or bool(x.faithful))
            and (not self.informative or bool(x.informative))
            and (not self.label_consistent or bool(x.label_consistent))
        )

    def matches(self, x: ValidatedExplanation, which: str) -> bool:
        p = self.preferred(x)
        if p is None:
            return False
        if which == "preferred":
            return p
        if which == "unpreferred":
            return not p
        raise ValueError(f"which {which!r}: expected preferred or unpreferred")


def validated_path(data_dir: Path) -> Path:
    return Path(data_dir) / VALIDATED_RELPATH


# ---------------------------------------------------------------------------------------------- reading


def _yes_no(value, where, row: int, column: str, dash: str = "n") -> bool | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    v = str(value).strip().lower()
    if v in ("y", "yes"):
        return True
    if v in ("n", "no") or (v == "-" and dash == "n"):
        return False
    raise DataFormatError(where, row, column, f"expected y or n, got {value!r}")


def _supported(value, where, row: int, column: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    v = str(value).strip().lower()
    if v in LETTERS or v == "-":
        return v
    raise DataFormatError(where, row, column, f"expected E, N, C or -, got {value!r}")


def read_validated_explanations(
    path: Path | str,
    *,
    sheet: str | None = None,
    label_map: Mapping[str, str] | None = None,
    n_items: int | None = 100,
    dash_in_yes_no: str = "n",
) -> list[ValidatedExplanation]:
    """Every annotated row of the workbook, in sheet order; blank rows are skipped.

    Errors are :class:`DataFormatError` with ``path[sheet]``, the 1-based sheet row and ``"<col> <header>"``.
    `n_items`: IDs must lie in 0..n_items-1 (None: any non-negative integer). `dash_in_yes_no`: ``"n"`` reads
    a ``-`` in Q1/Q2 as no (sheet row 1636 has Q1 n, Q2 -, Q3 -), ``"error"`` rejects it.
    """
    if dash_in_yes_no not in ("n", "error"):
        raise ValueError(f"dash_in_yes_no {dash_in_yes_no!r}: expected n or error")
    import openpyxl

    label_map = dict(LABEL_MAP if label_map is None else label_map)
    path = Path(path)
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise DataFormatError(path, 0, "<sheet>", f"no sheet {sheet!r}; sheets: {wb.sheetnames}")
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        where = f"{path}[{ws.title}]"
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise DataFormatError(where, 1, "<header>", "empty sheet")
        header = list(header) + [None] * max(0, 8 - len(header))
        for j, prefix in enumerate(HEADER_PREFIXES):
            cell = header[j]
            if not (isinstance(cell, str) and cell.strip().startswith(prefix)):
                raise DataFormatError(
                    where, 1, _COLUMN_LETTERS[j], f"expected a header starting {prefix!r}, got {cell!r}"
                )
        col = {p: f"{_COLUMN_LETTERS[j]} {p}" for j, p in enumerate(HEADER_PREFIXES)}
        out: list[ValidatedExplanation] = []
        for row_no, values in enumerate(rows, start=2):
            values = list(values) + [None] * max(0, 8 - len(values))
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                continue
            item, premise, hypothesis, llm_label, text, q1, q2, q3 = values[:8]
            if isinstance(item, float) and item.is_integer():
                item = int(item)
            if isinstance(item, bool) or not isinstance(item, int) or item < 0:
                raise DataFormatError(where, row_no, col["ID"], f"expected an item index, got {item!r}")
            if n_items is not None and item >= n_items:
                raise DataFormatError(
                    where, row_no, col["ID"], f"item index {item} is not in 0..{n_items - 1}"
                )
            for name, value in (
                ("Context/Premise", premise),
                ("Statement/Hypothesis", hypothesis),
                ("LLM-Explanation", text),
            ):
                if not isinstance(value, str) or not value.strip():
                    raise DataFormatError(where, row_no, col[name], f"expected text, got {value!r}")
            m = _LABEL_RE.match(llm_label) if isinstance(llm_label, str) else None
            if m is None:
                raise DataFormatError(
                    where, row_no, col["LLM-Label"], f"expected '<Label>-<k>', got {llm_label!r}"
                )
            label_name, position = m.group(1), int(m.group(2))
            if label_name not in label_map:
                raise DataFormatError(
                    where,
                    row_no,
                    col["LLM-Label"],
                    f"unknown label {label_name!r}: expected one of {sorted(label_map)}",
                )
            if position < 1:
                raise DataFormatError(where, row_no, col["LLM-Label"], f"bullet position {position} < 1")
            faithful = _yes_no(q1, where, row_no, col["Q1"], dash_in_yes_no)
            informative = _yes_no(q2, where, row_no, col["Q2"], dash_in_yes_no)
            supported = _supported(q3, where, row_no, col["Q3"])
            judged = [faithful is not None, informative is not None, supported is not None]
            if any(judged) and not all(judged):
                missing = [p for p, ok in zip(("Q1", "Q2", "Q3"), judged, strict=True) if not ok][0]
                raise DataFormatError(
                    where, row_no, col[missing], "blank while the row's other judgments are filled"
                )
            out.append(
                ValidatedExplanation(
                    sheet_row=row_no,
                    item=item,
                    premise=premise,
                    hypothesis=hypothesis,
                    llm_label=llm_label.strip(),
                    label_name=label_name,
                    label=label_map[label_name],
                    position=position,
                    text=text.strip(),
                    faithful=faithful,
                    informative=informative,
                    supported=supported,
                )
            )
    finally:
        wb.close()
    seen: dict[tuple[int, str, int], int] = {}
    for x in out:
        key = (x.item, x.label, x.position)
        if key in seen:
            raise DataFormatError(
                where,
                x.sheet_row,
                col["LLM-Label"],
                f"item {x.item} repeats {x.llm_label} (first at row {seen[key]})",
            )
        seen[key] = x.sheet_row
    return out


def _norm_text(s: str) -> str:
    return "".join(s.split()).strip("'\"")


def check_against_items(rows: Sequence[ValidatedExplanation], items: Sequence[Mapping]) -> list[int]:
    """Sheet rows whose premise/hypothesis differ from item `ID` of NLI_explanations.json.

    Texts are compared without whitespace and surrounding quotes (Excel dropped the leading apostrophe of
    item 38's premise); the real workbook gives an empty list.
    """
    bad = []
    for x in rows:
        it = items[x.item]
        if _norm_text(it["premise"]) != _norm_text(x.premise) or _norm_text(it["hypothesis"]) != _norm_text(
            x.hypothesis
        ):
            bad.append(x.sheet_row)
    return bad


def to_frame(rows: Sequence[ValidatedExplanation], rule: PreferenceRule | None = None) -> pd.DataFrame:
    """One row per bullet, with ``judged``, ``label_consistent`` and ``preferred`` (None when unjudged)."""
    rule = rule or PreferenceRule()
    frame = pd.DataFrame([x.__dict__ for x in rows])
    frame["judged"] = [x.judged for x in rows]
    frame["label_consistent"] = [x.label_consistent for x in rows]
    frame["preferred"] = [rule.preferred(x) for x in rows]
    return frame


def preference_shares(
    rows: Sequence[ValidatedExplanation], rule: PreferenceRule | None = None, by: str = "label"
) -> pd.DataFrame:
    """Shares of judged bullets that are faithful / informative / label-consistent / preferred.

    Index: the labels (``by="label"``: e, n, c; ``by="label_name"``: the four LLM-Label names) then ``all``.
    Columns: n_rows (all rows), n_judged, faithful, informative, label_consistent, preferred (shares of
    n_judged), supports_any (Q3 is E/N/C rather than -).
    """
    rule = rule or PreferenceRule()
    if by not in ("label", "label_name"):
        raise ValueError(f"by {by!r}: expected label or label_name")
    groups: dict[str, list[ValidatedExplanation]] = {}
    order = list(LETTERS) if by == "label" else ["Entailment", "NotEntailment", "Neutral", "Contradiction"]
    for x in rows:
        groups.setdefault(getattr(x, by), []).append(x)
    keys = [k for k in order if k in groups] + sorted(k for k in groups if k not in order)
    records = []
    for key, xs in [*((k, groups[k]) for k in keys), ("all", list(rows))]:
        judged = [x for x in xs if x.judged]
        n = len(judged)

        def share(values, n=n):
            return float(sum(values) / n) if n else float("nan")

        records.append(
            {
                by: key,
                "n_rows": len(xs),
                "n_judged": n,
                "faithful": share(bool(x.faithful) for x in judged),
                "informative": share(bool(x.informative) for x in judged),
                "label_consistent": share(bool(x.label_consistent) for x in judged),
                "supports_any": share(x.supported in LETTERS for x in judged),
                "preferred": share(bool(rule.preferred(x)) for x in judged),
            }
        )
    return pd.DataFrame(records).set_index(by)


# ---------------------------------------------------------------------------------------------- selection


def candidates_by_item(
    rows: Sequence[ValidatedExplanation],
) -> dict[int, dict[str, list[ValidatedExplanation]]]:
    """item -> label letter -> its bullets in list order (bullet position, then sheet row)."""
    out: dict[int, dict[str, list[ValidatedExplanation]]] = {}
    for x in rows:
        out.setdefault(x.item, {}).setdefault(x.label, []).append(x)
    for per_label in out.values():
        for label, xs in per_label.items():
            per_label[label] = sorted(xs, key=lambda x: (x.position, x.sheet_row))
    return out


@dataclass
class SelectionResult:
    """Explanation lists per item and which bullet (sheet row) filled each slot (None: no match)."""

    which: str
    method: str
    fallback: str
    items: list[int]
    explanations: list[list[Explanation]]
    chosen_rows: list[list[int | None]]
    filled: list[list[bool]]

    @property
    def n_slots(self) -> int:
        return sum(len(f) for f in self.filled)

    @property
    def n_filled(self) -> int:
        return sum(sum(f) for f in self.filled)

    @property
    def filled_share(self) -> float:
        return self.n_filled / self.n_slots if self.n_slots else float("nan")

    def share_by_label(self, human_sets: Sequence[Sequence[Explanation]]) -> dict[str, float]:
        """Filled share per slot label (human_sets: the same human lists the selection was made from)."""
        tot: dict[str, int] = {}
        hit: dict[str, int] = {}
        for item, flags in zip(self.items, self.filled, strict=True):
            for (_, label), f in zip(human_sets[item], flags, strict=True):
                tot[label] = tot.get(label, 0) + 1
                hit[label] = hit.get(label, 0) + int(f)
        return {k: hit[k] / tot[k] for k in LETTERS if k in tot}


def _pick(cands, used: set[int], ok) -> ValidatedExplanation | None:
    for x in cands:
        if x.sheet_row not in used and ok(x):
            return x
    return None


def select_explanations(
    human_sets: Sequence[Sequence[Explanation]],
    rows: Sequence[ValidatedExplanation],
    *,
    which: str = "preferred",
    method: str = "greedy",
    rule: PreferenceRule | None = None,
    fallback: str = "human",
    items: Sequence[int] | None = None,
) -> SelectionResult:
    """Replace the human explanations of `items` (default: every item the workbook covers) slot by slot.

    `human_sets[i]`: the (text, letter) explanations of item i (``comments`` of NLI_explanations.json).
    Deterministic: no randomness anywhere; each bullet is used at most once per item.
    """
    rule = rule or PreferenceRule()
    if which not in ("preferred", "unpreferred"):
        raise ValueError(f"which {which!r}: expected preferred or unpreferred")
    if method not in METHODS:
        raise ValueError(f"method {method!r}: expected one of {METHODS}")
    if fallback not in ("human", "any", "drop"):
        raise ValueError(f"fallback {fallback!r}: expected human, any or drop")
    by_item = candidates_by_item(rows)
    items = sorted(by_item) if items is None else list(items)
    out_expl, out_rows, out_filled = [], [], []

    def ok(x):
        return rule.matches(x, which)

    for item in items:
        if not 0 <= item < len(human_sets):
            raise ValueError(f"item {item} has no human explanations ({len(human_sets)} items given)")
        slots = list(human_sets[item])
        cands = by_item.get(item, {})
        used: set[int] = set()
        occurrence: dict[str, int] = {}
        n_slots_of = {lab: sum(1 for _, lb in slots if lb == lab) for lab in LETTERS}
        expl: list[Explanation] = []
        chosen: list[int | None] = []
        filled: list[bool] = []
        for text, label in slots:
            t = occurrence.get(label, 0)
            occurrence[label] = t + 1
            pool = cands.get(label, [])
            if method == "greedy":
                region = pool
            elif method == "representative":
                blocks = np.array_split(np.arange(len(pool)), n_slots_of[label])
                region = [pool[i] for i in blocks[t]]
            else:  # aligned
                region = pool[t : t + 1]
            x = _pick(region, used, ok)
            if x is not None:
                used.add(x.sheet_row)
                expl.append(x.explanation)
                chosen.append(x.sheet_row)
                filled.append(True)
                continue
            filled.append(False)
            if fallback == "any":
                x = _pick(pool, used, lambda _x: True)
                if x is not None:
                    used.add(x.sheet_row)
                    expl.append(x.explanation)
                    chosen.append(x.sheet_row)
                    continue
            if fallback == "drop":
                chosen.append(None)
                continue
            expl.append((text, label))
            chosen.append(None)
        out_expl.append(expl)
        out_rows.append(chosen)
        out_filled.append(filled)
    return SelectionResult(
        which=which,
        method=method,
        fallback=fallback,
        items=items,
        explanations=out_expl,
        chosen_rows=out_rows,
        filled=out_filled,
    )
