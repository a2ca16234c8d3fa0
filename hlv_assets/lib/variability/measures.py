"""What variability measures: the metric names, the poster's human row, the configuration (tokens, POS tags,
overlap measure, pair scope, aggregation) and the n-gram overlap of two token sequences.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

LEXICAL_MEASURES: tuple[str, ...] = ("dice", "jaccard", "overlap")
#: The poster's eight columns, in its order.
POSTER_METRICS: tuple[str, ...] = ("lex1", "lex2", "lex3", "syn1", "syn2", "syn3", "cos", "euc")
#: Everything a result reports per pair / item / set.
METRICS: tuple[str, ...] = (*POSTER_METRICS, "cos_dist", "euc_dist", "avg")
#: The poster's human-ex row (Chen et al. 2025, human preference table); its AVG column is 0.428.
POSTER_HUMAN: dict[str, float] = dict(
    zip(POSTER_METRICS, (0.335, 0.098, 0.042, 0.767, 0.341, 0.140, 0.528, 0.520), strict=True)
)

#: One explanation as accepted here: its text, or (text, label letter).
ExplanationLike = str | tuple[str, str] | list
Embed = Callable[[list[str]], np.ndarray]
PosTagger = Callable[[list[str]], list[list[str]]]


@dataclass(frozen=True)
class VariabilityConfig:
    """Every choice of our reading, with the defaults used for the report."""

    ngram_orders: tuple[int, ...] = (1, 2, 3)
    lexical_measure: str = "dice"  # one of LEXICAL_MEASURES
    tokenizer: str = "spacy"  # "spacy" | "wordpiece" (MiniLM, lower-cased) | "whitespace"
    lowercase: bool = True  # for "spacy"/"whitespace" (WordPiece lower-cases by itself)
    pos_attr: str = "pos"  # "pos" = universal POS (token.pos_) | "tag" = fine-grained (token.tag_)
    pair_scope: str = "item"  # "item" | "label"
    aggregate: str = "item"  # "item" (per item, then mean) | "pair" (pooled)
    strip: bool = True  # strip surrounding whitespace of each explanation first

    def __post_init__(self):
        if self.lexical_measure not in LEXICAL_MEASURES:
            raise ValueError(f"lexical_measure {self.lexical_measure!r}: expected one of {LEXICAL_MEASURES}")
        if self.tokenizer not in ("wordpiece", "spacy", "whitespace"):
            raise ValueError(f"tokenizer {self.tokenizer!r}: expected wordpiece, spacy or whitespace")
        if self.pos_attr not in ("pos", "tag"):
            raise ValueError(f"pos_attr {self.pos_attr!r}: expected pos or tag")
        if self.pair_scope not in ("item", "label"):
            raise ValueError(f"pair_scope {self.pair_scope!r}: expected item or label")
        if self.aggregate not in ("item", "pair"):
            raise ValueError(f"aggregate {self.aggregate!r}: expected item or pair")
        if not self.ngram_orders or any(int(n) != n or n < 1 for n in self.ngram_orders):
            raise ValueError(f"ngram_orders {self.ngram_orders!r}: expected positive integers")


# ---------------------------------------------------------------------------------------------- n-grams


def ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    """The set of distinct n-grams of a token sequence (empty when it is shorter than n)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def overlap(a: set, b: set, measure: str) -> float:
    if not a and not b:
        return math.nan
    inter = len(a & b)
    if measure == "dice":
        return 2.0 * inter / (len(a) + len(b))
    if measure == "jaccard":
        return inter / len(a | b)
    if measure == "overlap":
        return inter / min(len(a), len(b)) if a and b else 0.0
    raise ValueError(f"lexical measure {measure!r}: expected one of {LEXICAL_MEASURES}")


def ngram_overlap(a: Sequence[str], b: Sequence[str], n: int, measure: str = "dice") -> float:
    """Overlap of the distinct n-grams of two token (or tag) sequences; NaN when neither has an n-gram.

    Identical non-empty sequences give 1, sequences without a common n-gram give 0.
    """
    return overlap(ngrams(a, n), ngrams(b, n), measure)
