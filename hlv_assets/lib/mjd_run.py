"""Judging an explanation set with one LLM: the prompt grid of every item, the raw letter scores, the MJDs
per conversion, and the letter-mass gate (SPEC §3)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from hlv_assets.lib.judgments import (
    CONVERSIONS,
    EXPLANATION_TEMPLATE,
    PLAIN_TEMPLATE,
    ConversionError,
    JudgmentRecord,
    mjd_from_scores,
    prompt_grid,
    records_from_scores,
)
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


def judge(llm, explanation_set: pd.DataFrame, options: JudgeOptions) -> tuple[list[dict], list[JudgmentRecord]]:
    """Score every prompt of every item's grid with `llm.label_logits` (one call for the whole set)."""
    grid = []
    for row in explanation_set.itertuples():
        grid.extend(prompt_grid(row.premise, row.hypothesis, [list(p) for p in row.explanations], item=row.uid,
                                explicit=options.explicit, orders=options.orders, seed=options.seed))
    scores = llm.label_logits([g.prompt for g in grid])
    records = records_from_scores(grid, scores)
    prompts = [{"uid": g.item, "prompt": g.prompt} for g in grid]
    return prompts, records


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
