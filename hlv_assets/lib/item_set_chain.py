"""The chain of a registered item set: its explanation sources and their partition keys
(`<source>@<set>`), the selection rules it supports, its selection inputs, baselines and HJD frame."""

from __future__ import annotations

import re

import numpy as np

from hlv_assets.lib.distributions import counts_to_dist, distribution_frame
from hlv_assets.lib.explanation_sets import split_source

#: Item set names: lowercase letters, digits and '-', starting and ending with a letter or digit.
SET_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$")

#: Label-guided sets need k_l explanations per label; above this many labels per item they are not offered
#: (k explanations give k! explanation orders, and a 100-vote count is a distribution, not annotators).
LG_MAX_LABELS = 10
SOURCE_SEPARATOR = "@"


def source_key(source: str, set_name: str) -> str:
    """Partition key of an explanation source of an item set: `none@myset`, `smollm2-135m.lf-first@myset`."""
    return f"{source}{SOURCE_SEPARATOR}{set_name}"


def split_source_key(key: str) -> tuple[str, str]:
    """`smollm2-135m.mnli-lg-first@chaosnli-snli` -> ("smollm2-135m.mnli-lg-first", "chaosnli-snli")."""
    source, sep, set_name = key.rpartition(SOURCE_SEPARATOR)
    if not sep or not SET_NAME_RE.match(set_name):
        raise ValueError(f"{key!r} is not <source>@<item set>")
    split_source(source)  # none, human or <generator>.<set rule>
    return source, set_name


def set_rules(*, has_counts: bool, max_label_total: int, has_explanations: bool,
              max_explanations: int) -> list[str]:
    """The selection rules (SPEC §2 names) a set supports: LF always; MNLI-LG with k_l = the set's own label
    counts; VariErr-LG with the label sequence of the set's own explanations."""
    rules = ["lf-first", "lf-longest"]
    if has_counts and 0 < max_label_total <= LG_MAX_LABELS:
        rules += ["mnli-lg-first", "mnli-lg-longest"]
    if has_explanations and 0 < max_explanations <= LG_MAX_LABELS:
        rules += ["varierr-lg-first", "varierr-lg-longest"]
    return rules


def builtin_sources(has_explanations: bool) -> list[str]:
    return ["none", "human"] if has_explanations else ["none"]


def selection_frame(items):
    """The set's items with the columns `build_explanation_set` reads: `mnli_counts` = the set's counts
    (MNLI-LG's k_l), no VariErr counts (VariErr-LG follows the label sequence of the set's explanations)."""
    frame = items[["item_index", "uid", "premise", "hypothesis", "human_explanations"]].copy()
    frame["human_explanations"] = [[list(p) for p in ex] if ex is not None else [] for ex in items.human_explanations]
    frame["mnli_counts"] = [list(c) if c is not None else [] for c in items.counts]
    frame["varierr_counts"] = [[] for _ in range(len(frame))]
    return frame


def set_baselines(items, uids=None) -> dict:
    """Baseline distributions of a set (on `uids` when given): its label distribution (counts / total,
    like MNLI dist.) when it has counts, and uniform."""
    if uids is not None:
        items = items.set_index("uid").loc[list(uids)].reset_index()
    out = {}
    if len(items) and items.counts.notna().all():
        out["labels"] = distribution_frame(items.uid, counts_to_dist([list(c) for c in items.counts]))
    out["uniform"] = distribution_frame(items.uid, np.full((len(items), 3), 1.0 / 3.0))
    return out


def hjd_frame(items):
    """The set's HJD as a distribution frame (uid, p_e, p_n, p_c); None when the set has none."""
    if not len(items) or items.hjd.isna().any():
        return None
    return distribution_frame(items.uid, [list(h) for h in items.hjd])
