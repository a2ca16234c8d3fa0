"""Rows of the distribution-comparison table: each distribution against the HJD on the same items."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hlv_assets.lib.distributions import items_sha256
from hlv_assets.lib.metrics import compare
from hlv_assets.lib.row_ids import make_row_id

PROB = ["p_e", "p_n", "p_c"]


def aligned(hjd: pd.DataFrame, other: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Both distributions on the uids of `other` (in its order); a uid missing from the HJD is an error."""
    ref = hjd.set_index("uid")
    missing = [u for u in other.uid if u not in ref.index]
    if missing:
        raise KeyError(f"{len(missing)} items have no HJD: {missing[:5]}")
    return ref.loc[list(other.uid), PROB].to_numpy(), other[PROB].to_numpy(), list(other.uid)


def comparison_row(
    hjd: pd.DataFrame,
    dist: pd.DataFrame,
    *,
    source: str,
    profile: str,
    llm: str | None = None,
    explanations: str | None = None,
    conversion: str | None = None,
    item_set: str = "hlv341",
    extra: dict | None = None,
) -> dict:
    p, q, uids = aligned(hjd, dist)
    items_hash = items_sha256(uids)
    data = {
        "source": source,
        "llm": llm,
        "explanations": explanations,
        "conversion": conversion,
        "item_set": item_set,
        "profile": profile,
        "items_sha256": items_hash,
        **compare(p, q),
        **(extra or {}),
    }
    key = {
        "source": source,
        "llm": llm,
        "explanations": explanations,
        "conversion": conversion,
        "item_set": item_set,
        "items": items_hash,
    }
    return {
        "row_id": make_row_id("distribution_comparison", key, profile),
        "items_sha256": items_hash,
        "data": data,
    }


def baseline_rows(
    hjd: pd.DataFrame,
    dists: dict[str, pd.DataFrame],
    *,
    profile: str,
    uids: list[str] | None = None,
    item_set: str = "hlv341",
) -> list[dict]:
    """One row per baseline, on `uids` when given (a subset: baselines recomputed there)."""
    rows = []
    for source, frame in dists.items():
        if uids is not None:
            frame = frame.set_index("uid").loc[uids].reset_index()
        rows.append(comparison_row(hjd, frame, source=source, profile=profile, item_set=item_set))
    return rows
