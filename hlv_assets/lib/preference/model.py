"""The human validation of Llama3 explanations as data: the annotated bullet, the preference rule, the
workbook's layout, and the shares of judged bullets that are faithful / informative / label-consistent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hlv_assets.lib.nli import LETTERS, Explanation

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
