"""Preference-based replacement: the 4 human explanations of an item replaced slot by slot by Llama3 bullets of
the same label that the rule prefers (or not), by the greedy, representative or aligned method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hlv_assets.lib.nli import LETTERS, Explanation
from hlv_assets.lib.preference.model import METHODS, PreferenceRule, ValidatedExplanation


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


def _select_item(slots: list[Explanation], cands: dict[str, list[ValidatedExplanation]], ok, method: str,
                 fallback: str) -> tuple[list[Explanation], list[int | None], list[bool]]:
    """(explanations, chosen sheet rows, filled flags) of one item's slots."""
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
    return expl, chosen, filled


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
        expl, chosen, filled = _select_item(list(human_sets[item]), by_item.get(item, {}), ok, method, fallback)
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
