"""Judging an explanation set with one LLM: the prompt grid of every item, the raw letter scores, the MJDs
per conversion, and the letter-mass gate (SPEC §3)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from hlv_assets.lib.judgments import (
    CONVERSIONS,
    EXPLANATION_TEMPLATE,
    PLAIN_TEMPLATE,
    ConversionError,
    JudgmentRecord,
    count_missing,
    mjd_from_scores,
    prompt_grid,
    records_from_scores,
)
from hlv_assets.lib.progress import maybe_progress
from hlv_assets.lib.prompts import template_sha256

MJD_VERSION = f"mjd-{template_sha256(PLAIN_TEMPLATE + EXPLANATION_TEMPLATE)}-v1"


@dataclass(frozen=True)
class JudgeOptions:
    orders: str | int = "all"  # explanation orders: "all" arrangements or K seeded samples
    seed: int = 0
    explicit: bool = False
    temperature: float = 20.0
    min_letter_mass: float = 0.01  # a prompt putting less mass than this on A/B/C is "off the letters"
    max_low_mass_share: float = 0.5  # the partition fails when more prompts than this are off the letters
    missing_letters: str = "refuse"  # the judge's rule for a letter missing from a top-k list (registry option)


def judge(llm, explanation_set: pd.DataFrame, options: JudgeOptions, *, progress: Callable[[str], None] | None = None,
          items_per_call: int | None = None) -> tuple[list[dict], list[JudgmentRecord]]:
    """Score every prompt of every item's grid with `llm.label_logits`, whole items a call: `items_per_call`, by
    default as many as fit in the LLM's chunk (`CachedLLM.chunk_size`: 1,024 prompts for a prefix-tree backend,
    which shares each item's prefixes within a call; a killed run loses at most one call's work, every call's
    answers being stored as soon as it returns). `progress` gets a line every few seconds: items done, items/s,
    prompts sent/s, ETA (items answered entirely from the call cache are not timed)."""
    grids = [prompt_grid(row.premise, row.hypothesis, [list(p) for p in row.explanations], item=row.uid,
                         explicit=options.explicit, orders=options.orders, seed=options.seed)
             for row in explanation_set.itertuples()]
    if items_per_call is None:
        widest = max((len(g) for g in grids), default=1)
        items_per_call = max(1, int(getattr(llm, "chunk_size", 64)) // max(widest, 1))
    sent = _Sent(llm)
    bar = maybe_progress(len(grids), progress, what=f"judging with {llm.identity().model_id}", unit="items",
                         detail=sent.line)
    scores = []
    for start in range(0, len(grids), items_per_call):
        part = [g for grid in grids[start:start + items_per_call] for g in grid]
        scores += llm.label_logits([g.prompt for g in part])
        if bar is not None:
            done = min(start + items_per_call, len(grids))
            if sent.idle():  # all from the call cache: not part of the rate
                bar.restart(done)
            bar.update(done)
    grid = [g for grid in grids for g in grid]
    records = records_from_scores(grid, scores, options.missing_letters)
    prompts = [{"uid": g.item, "prompt": g.prompt} for g in grid]
    return prompts, records


class _Sent:
    """Prompts the LLM sent to its model (the call cache's misses), for progress lines."""

    def __init__(self, llm) -> None:
        self.counters = getattr(llm, "counters", None)
        self.started = time.monotonic()
        self.last = self.first = self._misses()

    def _misses(self) -> int:
        return int(getattr(self.counters, "misses", 0))

    def idle(self) -> bool:
        """True when nothing was sent since the last call (all answers came from the cache)."""
        now = self._misses()
        if now == self.last:
            self.started = time.monotonic()
            self.first = now
            return True
        self.last = now
        return False

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        sent = self._misses() - self.first
        return f"{sent / elapsed:.1f} prompts sent/s" if elapsed > 0 and sent else "? prompts sent/s"


def mjd_frames(records: list[JudgmentRecord], temperature: float = 20.0) -> tuple[pd.DataFrame, dict[str, str]]:
    """MJDs for every conversion that applies; the ones refused (e.g. normalize on log-probabilities or
    non-positive logits) are returned with the reason instead of a number."""
    frames, refused = [], {}
    for conversion in CONVERSIONS:
        try:
            mjd = mjd_from_scores(records, conversion, temperature)
        except ConversionError as exc:
            refused[conversion] = str(exc)
            continue
        frames.append(pd.DataFrame([{"uid": uid, "conversion": conversion, "p_e": p[0], "p_n": p[1], "p_c": p[2]}
                                    for uid, p in mjd.items()]))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["uid", "conversion", "p_e", "p_n", "p_c"])
    return frame, refused


def missing_letter_refusal(records: list[JudgmentRecord]) -> str | None:
    """One line naming the first item and letter a `refuse` judge has no score for (None when nothing is
    refused): its MJD is refused as a whole, never computed from fewer prompts."""
    refused = [r for r in records if r.missing_letters == "refuse" and any(s is None for s in r.scores)]
    if not refused:
        return None
    first = refused[0]
    letters = ", ".join(letter for letter, s in zip(first.letters, first.scores) if s is None)
    return (f"item {first.item!r} (option order {list(first.option_order)}): no score for letter {letters} "
            f"(not among the judge's top-k log-probabilities); {len(refused)} of {len(records)} prompts of "
            f"{len(count_missing(refused))} items miss a letter and the judge's missing_letters rule is refuse: "
            "register it with --option missing_letters=renormalize or floor to use them")


def letter_mass_report(records: list[JudgmentRecord], options: JudgeOptions) -> dict:
    masses = [r.letter_mass for r in records if r.letter_mass is not None]
    low = [m for m in masses if m < options.min_letter_mass]
    share = len(low) / len(masses) if masses else 0.0
    return {
        "prompts": len(records), "with_mass": len(masses),
        "mean_letter_mass": (sum(masses) / len(masses)) if masses else None,
        "low_mass_prompts": len(low), "low_mass_share": share,
        "passed": share <= options.max_low_mass_share,
    }


def raw_score_summary(records: list[JudgmentRecord]) -> dict:
    values = [s for r in records for s in r.scores if s is not None]
    return {"min": min(values), "max": max(values), "mean": sum(values) / len(values)} if values else {}
