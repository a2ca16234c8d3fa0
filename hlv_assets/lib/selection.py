"""Select model explanations into the six explanation sets of SPEC §2.

For one item, `parsed` maps each label letter (e/n/c) to the explanations parsed from the answer to the
prompt for that label (in answer order). A label needs k explanations:

* LF (label-free): one per label, 3 per item (k_l = 1).
* VariErr-LG: the item's human label sequence (the letters of its 4 `comments`); slot j with label l
  gets the next explanation of l (k_l = VariErr count of l).
* MNLI-LG: 5 slots, k_l = MNLI count of l (the 5 original annotators), slots grouped by label.

`first` takes the first k parsed explanations, `longest` the k longest by characters. Every convention
that is "our reading" of the released selection files is a field of :class:`SelectionOptions`; the
defaults reproduce the released files (with :data:`RELEASED_SELECTION_OPTIONS` for the LF slot order; see
`hlv_assets_tests/lib/test_released_match.py`):

* slot order: LF in `lf_order` (default [E, N, C] as everywhere in SPEC §1; the released Llama3 and
  Mixtral files use e, c, n, GPT4o's e, n, c); MNLI-LG grouped by label in `mnli_order` ([E, N, C], as
  released); VariErr-LG in the human sequence. The MJD step permutes explanations, so the slot order
  only matters when explanation orders are sampled.
* fewer than k explanations: `fill="first"` pads with the best-ranked explanation (the released files:
  with 2 explanations and k = 4 the picks are 0, 1, 0, 0: Llama3 items 226 and 305, VariErr-LG);
  `fill="cycle"` reuses them cyclically (0, 1, 0, 1; SPEC's wording). They differ only when k >= n + 2.
* ties in length: `ties="first"` keeps the explanation that comes first in the answer (a stable sort);
  `"last"` would miss 283 items of the released `longest` files.
* no explanation at all for a needed label: `on_empty="skip"` leaves those slots out (the set is
  shorter; the caller counts the failed parse), `"error"` raises :class:`SelectionError`.

Texts are returned exactly as parsed: no whitespace normalisation happens here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from hlv_assets.lib.nli import LETTERS, letter

__all__ = [
    "DEFAULT_SELECTION",
    "RELEASED_SELECTION_OPTIONS",
    "SET_NAMES",
    "SelectionError",
    "SelectionOptions",
    "needed_counts",
    "rank_explanations",
    "select_explanations",
    "split_set_name",
]

#: The six explanation sets, as named by the platform.
SET_NAMES: tuple[str, ...] = (
    "lf-first",
    "lf-longest",
    "varierr-lg-first",
    "varierr-lg-longest",
    "mnli-lg-first",
    "mnli-lg-longest",
)

SCHEMES = ("lf", "varierr-lg", "mnli-lg")
CRITERIA = ("first", "longest")


class SelectionError(ValueError):
    """A selection that cannot be made (unknown rule, inconsistent counts, no explanation for a label)."""


@dataclass(frozen=True)
class SelectionOptions:
    """The conventions of selection (see the module docstring)."""

    lf_order: tuple[str, str, str] = LETTERS
    mnli_order: tuple[str, str, str] = LETTERS
    fill: Literal["first", "cycle"] = "first"
    ties: Literal["first", "last"] = "first"
    on_empty: Literal["skip", "error"] = "skip"

    def __post_init__(self):
        for name in ("lf_order", "mnli_order"):
            order = getattr(self, name)
            if sorted(order) != sorted(LETTERS):
                raise ValueError(f"{name} must be a permutation of {LETTERS}, not {order!r}")
        if self.fill not in ("first", "cycle"):
            raise ValueError(f"fill must be 'first' or 'cycle', not {self.fill!r}")
        if self.ties not in ("first", "last"):
            raise ValueError(f"ties must be 'first' or 'last', not {self.ties!r}")
        if self.on_empty not in ("skip", "error"):
            raise ValueError(f"on_empty must be 'skip' or 'error', not {self.on_empty!r}")


DEFAULT_SELECTION = SelectionOptions()

#: The conventions of the released selection files, per generator.
RELEASED_SELECTION_OPTIONS: dict[str, SelectionOptions] = {
    "llama3": SelectionOptions(lf_order=("e", "c", "n")),
    "gpt4o": SelectionOptions(lf_order=("e", "n", "c")),
    "mixtral": SelectionOptions(lf_order=("e", "c", "n")),
}


def split_set_name(rule: str) -> tuple[str, str]:
    """`"varierr-lg-longest"` -> `("varierr-lg", "longest")`; raises SelectionError for unknown names."""
    scheme, _, criterion = rule.rpartition("-")
    if scheme not in SCHEMES or criterion not in CRITERIA:
        raise SelectionError(f"unknown explanation set {rule!r}: expected one of {list(SET_NAMES)}")
    return scheme, criterion


def rank_explanations(explanations: Sequence[str], criterion: str, ties: str = "first") -> list[str]:
    """The explanations in the order they are picked: answer order (`first`) or by length (`longest`)."""
    if criterion == "first":
        return list(explanations)
    if criterion != "longest":
        raise SelectionError(f"unknown criterion {criterion!r}: expected 'first' or 'longest'")
    indexed = list(enumerate(explanations))
    if ties == "first":
        indexed.sort(key=lambda p: (-len(p[1]), p[0]))
    else:
        indexed.sort(key=lambda p: (-len(p[1]), -p[0]))
    return [text for _, text in indexed]


def _pick(ranked: list[str], k: int, fill: str) -> list[str]:
    if k <= len(ranked):
        return ranked[:k]
    if fill == "cycle":
        return [ranked[j % len(ranked)] for j in range(k)]
    return ranked + [ranked[0]] * (k - len(ranked))


def _counts(counts: Sequence[int], name: str, total: int | None) -> list[int]:
    if len(counts) != 3 or any(isinstance(c, bool) or int(c) != c or c < 0 for c in counts):
        raise SelectionError(f"{name} must be 3 non-negative integers [E, N, C], got {list(counts)!r}")
    counts = [int(c) for c in counts]
    if total is not None and sum(counts) != total:
        raise SelectionError(f"{name} {counts} must sum to {total}")
    return counts


def needed_counts(
    rule: str,
    human_labels: Sequence[str] = (),
    varierr_counts: Sequence[int] = (),
    mnli_counts: Sequence[int] = (),
) -> dict[str, int]:
    """k_l per label letter for a set (see the module docstring)."""
    scheme, _ = split_set_name(rule)
    if scheme == "lf":
        return dict.fromkeys(LETTERS, 1)
    if scheme == "varierr-lg":
        seq = [letter(x) for x in human_labels]
        counts = [seq.count(x) for x in LETTERS]
        if varierr_counts and _counts(varierr_counts, "varierr_counts", None) != counts:
            raise SelectionError(f"human labels {seq} do not match VariErr counts {list(varierr_counts)}")
        return dict(zip(LETTERS, counts, strict=True))
    return dict(zip(LETTERS, _counts(mnli_counts, "mnli_counts", None), strict=True))


def select_explanations(
    parsed: Mapping[str, Sequence[str]],
    rule: str,
    human_labels: Sequence[str] = (),
    varierr_counts: Sequence[int] = (),
    mnli_counts: Sequence[int] = (),
    options: SelectionOptions | None = None,
) -> list[tuple[str, str]]:
    """The explanation set `rule` (one of :data:`SET_NAMES`) for one item, as (text, letter) pairs.

    parsed: label letter -> explanations parsed from the answer for that label (missing = none).
    human_labels: the item's human label sequence (letters of its `comments`), needed by VariErr-LG.
    varierr_counts: [cE, cN, cC] VariErr counts; when given, checked against `human_labels`.
    mnli_counts: [cE, cN, cC] counts of the 5 MNLI annotators, needed by MNLI-LG.
    """
    options = options or DEFAULT_SELECTION
    scheme, criterion = split_set_name(rule)
    parsed = {letter(k): list(v) for k, v in parsed.items()}
    if scheme == "varierr-lg" and not human_labels:
        raise SelectionError("varierr-lg sets need the item's human label sequence")
    if scheme == "mnli-lg" and not mnli_counts:
        raise SelectionError("mnli-lg sets need the item's MNLI label counts")
    needed = needed_counts(rule, human_labels, varierr_counts, mnli_counts)
    picks: dict[str, list[str]] = {}
    for lab, k in needed.items():
        if k == 0:
            continue
        ranked = rank_explanations(parsed.get(lab, []), criterion, options.ties)
        if not ranked:
            if options.on_empty == "error":
                raise SelectionError(f"{rule}: no explanation for label {lab!r}, {k} needed")
            picks[lab] = []
            continue
        picks[lab] = _pick(ranked, k, options.fill)

    if scheme == "lf":
        order: list[str] = list(options.lf_order)
    elif scheme == "mnli-lg":
        order = [lab for lab in options.mnli_order for _ in range(needed[lab])]
    else:
        order = [letter(x) for x in human_labels]
    used = dict.fromkeys(LETTERS, 0)
    out: list[tuple[str, str]] = []
    for lab in order:
        chosen = picks.get(lab, [])
        if used[lab] < len(chosen):
            out.append((chosen[used[lab]], lab))
        used[lab] += 1
    return out
