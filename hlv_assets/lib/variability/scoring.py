"""Scoring variability: the similarities of a pair of explanations at the three levels, each explanation's
features, and the within-set and between-sets scores (per item, aggregated).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hlv_assets.lib.variability.measures import (
    METRICS,
    POSTER_METRICS,
    Embed,
    ExplanationLike,
    PosTagger,
    VariabilityConfig,
    ngrams,
    overlap,
)
from hlv_assets.lib.variability.models import default_embed, pos_tag, tokenize

# ---------------------------------------------------------------------------------------------- pairs


@dataclass
class Features:
    """What the pair scores need of one explanation."""

    text: str
    label: str | None
    lexical: dict[int, set] = field(default_factory=dict)
    syntactic: dict[int, set] = field(default_factory=dict)
    embedding: np.ndarray | None = None


def semantic_similarity(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """cos (cosine similarity), euc = 1/(1+‖a−b‖), cos_dist = 1 − cos, euc_dist = ‖a−b‖ of two embeddings.

    The vectors are L2-normalised first (identical texts: cos 1, euc 1, both distances 0).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        raise ValueError("zero embedding vector")
    a, b = a / na, b / nb
    cos = float(np.clip(a @ b, -1.0, 1.0))
    dist = float(np.linalg.norm(a - b))
    return {"cos": cos, "euc": 1.0 / (1.0 + dist), "cos_dist": 1.0 - cos, "euc_dist": dist}


def pair_similarity(a: Features, b: Features, config: VariabilityConfig | None = None) -> dict[str, float]:
    """All metrics of one explanation pair (``avg`` = mean of the poster's eight, NaNs skipped)."""
    config = config or VariabilityConfig()
    out: dict[str, float] = {}
    for n in config.ngram_orders:
        out[f"lex{n}"] = overlap(a.lexical[n], b.lexical[n], config.lexical_measure)
        out[f"syn{n}"] = overlap(a.syntactic[n], b.syntactic[n], config.lexical_measure)
    out.update(semantic_similarity(a.embedding, b.embedding))
    vals = [out[k] for k in POSTER_METRICS if k in out and not math.isnan(out[k])]
    out["avg"] = float(np.mean(vals)) if vals else math.nan
    return out


def _split(expl: ExplanationLike, strip: bool) -> tuple[str, str | None]:
    if isinstance(expl, str):
        text, label = expl, None
    elif isinstance(expl, (tuple, list)) and len(expl) == 2 and isinstance(expl[0], str):
        text, label = expl[0], expl[1]
    else:
        raise TypeError(f"an explanation is a text or a (text, label) pair, got {expl!r:.80}")
    return (text.strip() if strip else text), label


def featurize(
    texts: Sequence[ExplanationLike],
    *,
    embed: Embed | None = None,
    pos_tagger: PosTagger | None = None,
    config: VariabilityConfig | None = None,
) -> list[Features]:
    """Token n-grams, POS n-grams and the embedding of every explanation (each text computed once)."""
    config = config or VariabilityConfig()
    pairs = [_split(t, config.strip) for t in texts]
    unique = list(dict.fromkeys(text for text, _ in pairs))
    if not unique:
        return []
    toks = dict(zip(unique, tokenize(unique, config.tokenizer, config.lowercase), strict=True))
    if pos_tagger is None:
        tags_list = pos_tag(unique, config.pos_attr)
    else:
        tags_list = pos_tagger(unique)
    tags = dict(zip(unique, tags_list, strict=True))
    vectors = np.asarray((embed or default_embed)(unique), dtype=float)
    if vectors.ndim != 2 or vectors.shape[0] != len(unique):
        raise ValueError(f"embed returned shape {vectors.shape} for {len(unique)} texts")
    emb = dict(zip(unique, vectors, strict=True))
    return [
        Features(
            text=text,
            label=label,
            lexical={n: ngrams(toks[text], n) for n in config.ngram_orders},
            syntactic={n: ngrams(tags[text], n) for n in config.ngram_orders},
            embedding=emb[text],
        )
        for text, label in pairs
    ]


@dataclass
class VariabilityResult:
    """``per_item``: one row per item (item, n_pairs, metrics); ``means``: the aggregate per metric."""

    per_item: pd.DataFrame
    means: dict[str, float]
    n_pairs: int
    config: VariabilityConfig

    def poster_row(self) -> dict[str, float]:
        """The eight poster columns plus AVG (mean of the eight)."""
        row = {k: self.means[k] for k in POSTER_METRICS if k in self.means}
        row["avg"] = float(np.mean(list(row.values())))
        return row


def _pairs_within(feats: list[Features], scope: str):
    for a, b in itertools.combinations(feats, 2):
        if scope == "label" and (a.label is None or a.label != b.label):
            continue
        yield a, b


def _pairs_between(fa: list[Features], fb: list[Features], scope: str):
    for a in fa:
        for b in fb:
            if scope == "label" and (a.label is None or a.label != b.label):
                continue
            yield a, b


def _check_label_scope(sets, config: VariabilityConfig) -> None:
    if config.pair_scope == "label":
        for i, s in enumerate(sets):
            for e in s:
                if isinstance(e, str):
                    raise ValueError(
                        f"pair_scope='label' needs (text, label) explanations; item {i} has a bare text"
                    )


def _aggregate(rows: list[dict], pair_rows: list[dict], config: VariabilityConfig) -> VariabilityResult:
    metric_names = [k for k in METRICS if k != "avg"]
    metric_names = [k for k in metric_names if any(k in r for r in pair_rows)] + ["avg"]
    per_item = pd.DataFrame(rows, columns=["item", "n_pairs", *metric_names])
    if config.aggregate == "item":
        scored = per_item[per_item["n_pairs"] > 0]
        means = {k: float(scored[k].mean()) for k in metric_names}
    else:
        pooled = pd.DataFrame(pair_rows)
        means = {k: float(pooled[k].mean()) if k in pooled else math.nan for k in metric_names}
    return VariabilityResult(per_item=per_item, means=means, n_pairs=len(pair_rows), config=config)


def _score_items(pair_lists, config: VariabilityConfig) -> VariabilityResult:
    rows, pair_rows = [], []
    for item, pairs in pair_lists:
        scores = [pair_similarity(a, b, config) for a, b in pairs]
        pair_rows.extend(scores)
        row = {"item": item, "n_pairs": len(scores)}
        if scores:
            frame = pd.DataFrame(scores)
            row.update({k: float(frame[k].mean()) for k in frame.columns})
        rows.append(row)
    return _aggregate(rows, pair_rows, config)


def _featurize_sets(sets, embed, pos_tagger, config) -> list[list[Features]]:
    flat = [e for s in sets for e in s]
    feats = featurize(flat, embed=embed, pos_tagger=pos_tagger, config=config)
    out, k = [], 0
    for s in sets:
        out.append(feats[k : k + len(s)])
        k += len(s)
    return out


def within_set_variability(
    sets: Sequence[Sequence[ExplanationLike]],
    *,
    embed: Embed | None = None,
    pos_tagger: PosTagger | None = None,
    config: VariabilityConfig | None = None,
    items: Sequence | None = None,
) -> VariabilityResult:
    """Variability *within* one explanation set: pairs of explanations of the same item (e.g. 4 human ones).

    `sets[i]` = the explanations of item i (texts or (text, letter) pairs); `items` names the items
    (default 0..len-1). ``embed`` / ``pos_tagger`` replace MiniLM / spaCy (tests pass fakes).
    """
    config = config or VariabilityConfig()
    _check_label_scope(sets, config)
    names = list(items) if items is not None else list(range(len(sets)))
    if len(names) != len(sets):
        raise ValueError(f"{len(names)} item names for {len(sets)} sets")
    feats = _featurize_sets(sets, embed, pos_tagger, config)
    return _score_items(
        ((name, list(_pairs_within(f, config.pair_scope))) for name, f in zip(names, feats, strict=True)),
        config,
    )


def between_sets_variability(
    sets_a: Sequence[Sequence[ExplanationLike]],
    sets_b: Sequence[Sequence[ExplanationLike]],
    *,
    embed: Embed | None = None,
    pos_tagger: PosTagger | None = None,
    config: VariabilityConfig | None = None,
    items: Sequence | None = None,
) -> VariabilityResult:
    """Variability *between* two sets of the same items (e.g. human vs model): every (a, b) pair of an item."""
    config = config or VariabilityConfig()
    if len(sets_a) != len(sets_b):
        raise ValueError(f"the two sets cover {len(sets_a)} and {len(sets_b)} items")
    _check_label_scope(sets_a, config)
    _check_label_scope(sets_b, config)
    names = list(items) if items is not None else list(range(len(sets_a)))
    feats = _featurize_sets([*sets_a, *sets_b], embed, pos_tagger, config)
    fa, fb = feats[: len(sets_a)], feats[len(sets_a) :]
    return _score_items(
        (
            (name, list(_pairs_between(a, b, config.pair_scope)))
            for name, a, b in zip(names, fa, fb, strict=True)
        ),
        config,
    )
