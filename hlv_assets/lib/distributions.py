"""Baseline label distributions over the 341 items (SPEC §1) and the identity of an item set."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from hlv_assets.lib.nli import LETTERS

#: Baseline sources in table order, with what each is.
BASELINES = {
    "chaosnli": "ChaosNLI HJD (100 crowd votes)",
    "varierr": "VariErr dist. (4 expert round-1 labels / 4)",
    "mnli": "MNLI dist. (5 original annotators / 5)",
    "mnli-onehot": "MNLI one-hot (gold label)",
    "uniform": "uniform [1/3, 1/3, 1/3]",
}


def counts_to_dist(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    if (totals <= 0).any():
        raise ValueError(f"rows {np.flatnonzero(totals[:, 0] <= 0).tolist()} have no labels")
    return counts / totals


def baseline_distribution(items: pd.DataFrame, source: str) -> np.ndarray:
    """The N×3 distribution of one baseline source over `items` (the hlv_items frame, in its order)."""
    n = len(items)
    if source == "chaosnli":
        return np.asarray(items.hjd.tolist(), dtype=float)
    if source == "varierr":
        return counts_to_dist(items.varierr_counts.tolist())
    if source == "mnli":
        return counts_to_dist(items.mnli_counts.tolist())
    if source == "mnli-onehot":
        out = np.zeros((n, 3))
        out[np.arange(n), [LETTERS.index(g) for g in items.mnli_gold]] = 1.0
        return out
    if source == "uniform":
        return np.full((n, 3), 1.0 / 3.0)
    raise KeyError(f"unknown baseline {source!r}; known: {', '.join(BASELINES)}")


def items_sha256(uids) -> str:
    """Identity of an item subset: sha256 of its sorted uids (comparisons only pair rows with equal hashes)."""
    return hashlib.sha256("\n".join(sorted(map(str, uids))).encode()).hexdigest()


def distribution_frame(uids, dist: np.ndarray) -> pd.DataFrame:
    dist = np.asarray(dist, dtype=float)
    return pd.DataFrame({"uid": list(uids), "p_e": dist[:, 0], "p_n": dist[:, 1], "p_c": dist[:, 2]})
