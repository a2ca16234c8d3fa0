"""ChaosNLI / ANLI metrics against hand-computed examples, batched prediction, sentence embeddings."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from hlv_assets.lib import evaluation as ev

# Two items: q1 = [1/2, 1/4, 1/4] against HJD [1, 0, 0]; q2 = uniform against HJD [1/2, 1/2, 0].
LOGITS = np.log(np.array([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]))
HJD = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])


def test_kl_by_hand():
    # KL(p1 || q1) = 1 * log(1 / 0.5) = log 2;  KL(p2 || q2) = 2 * 0.5 * log(0.5 / (1/3)) = log 1.5
    per_item = ev.kl_per_item(LOGITS, HJD)
    assert per_item == pytest.approx([math.log(2), math.log(1.5)], abs=1e-12)
    expected_mean = (math.log(2) + math.log(1.5)) / 2
    m = ev.chaosnli_metrics(LOGITS, HJD)
    assert m["kl_per_item"] == pytest.approx(expected_mean, abs=1e-12)
    # the published number is the element-wise mean over N x 3: the per-item mean divided by 3
    assert m["kl_published"] == pytest.approx(expected_mean / 3, abs=1e-12)
    assert ev.kl_published(LOGITS, HJD) == pytest.approx(m["kl_per_item"] / 3, abs=1e-15)


def test_kl_published_matches_torch_kl_div():
    import torch
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 3)) * 3
    hjd = rng.dirichlet([0.5, 0.5, 0.5], size=7)
    hjd[0] = [0.0, 0.3, 0.7]  # a zero in the target: 0 * log 0 = 0 as in torch
    with warnings.catch_warnings():  # torch warns that 'mean' will become 'batchmean' one day
        warnings.simplefilter("ignore")
        ref = F.kl_div(
            F.log_softmax(torch.tensor(logits), dim=-1), torch.tensor(hjd), reduction="mean"
        ).item()
    assert ev.kl_published(logits, hjd) == pytest.approx(ref, rel=1e-12, abs=1e-15)
    ce_ref = F.cross_entropy(torch.tensor(logits), torch.tensor(hjd)).item()
    assert ev.soft_ce_loss(logits, hjd) == pytest.approx(ce_ref, rel=1e-12)


def test_ce_by_hand():
    # item 1: -log 0.5 = log 2; item 2: -(0.5 log 1/3 + 0.5 log 1/3) = log 3
    m = ev.chaosnli_metrics(LOGITS, HJD)
    assert m["ce_loss"] == pytest.approx((math.log(2) + math.log(3)) / 2, abs=1e-12)


def test_ties_go_to_the_first_label():
    hjd = np.array([[0.4, 0.4, 0.2], [0.2, 0.4, 0.4], [1 / 3, 1 / 3, 1 / 3], [0.4, 0.2, 0.4]])
    assert ev.argmax_labels(hjd).tolist() == [0, 1, 0, 0]
    # predictions that pick E, N, E, E agree with those targets everywhere
    logits = np.log(np.array([[0.6, 0.2, 0.2], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2], [0.5, 0.25, 0.25]]))
    m = ev.chaosnli_metrics(logits, hjd)
    assert m["accuracy"] == 1.0
    # tied logits predict E as well
    m_tied = ev.chaosnli_metrics(np.zeros((4, 3)), hjd)
    assert m_tied["accuracy"] == pytest.approx(3 / 4)


def test_f1_by_hand_and_against_sklearn():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 0])
    # E: tp1 fp1 fn1 -> 0.5; N: tp2 fp1 fn0 -> 0.8; C: tp1 fp0 fn1 -> 2/3
    f = ev.f1_scores(y_true, y_pred)
    assert f["f1_per_class"] == pytest.approx([0.5, 0.8, 2 / 3])
    assert f["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert f["weighted_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)  # equal supports
    assert f["accuracy"] == pytest.approx(4 / 6)

    from sklearn import metrics
    rng = np.random.default_rng(1)
    for trial in range(20):
        n = int(rng.integers(1, 40))
        y_true = rng.integers(0, 3 if trial % 3 else 2, size=n)  # some trials lack a class
        y_pred = rng.integers(0, 3, size=n)
        f = ev.f1_scores(y_true, y_pred)
        for average in ("macro", "weighted"):
            ref = metrics.f1_score(y_true, y_pred, labels=[0, 1, 2], average=average, zero_division=0)
            assert f[f"{average}_f1"] == pytest.approx(ref, abs=1e-12)


def test_anli_metrics_by_hand():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]]))
    gold = [0, 1, 2, 2]
    m = ev.anli_metrics(logits, gold)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["ce_loss"] == pytest.approx(-(math.log(0.7) + math.log(0.5) + math.log(0.8) + math.log(0.1)) / 4)
    # E: tp1 fp1 fn0 -> 2/3 (support 1); N: 1.0 (support 1); C: tp1 fn1 -> 2/3 (support 2)
    assert m["weighted_f1"] == pytest.approx((2 / 3 + 1.0 + 2 * 2 / 3) / 4)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 1.0 + 2 / 3) / 3)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        ev.chaosnli_metrics(np.array([[np.nan, 0, 0]]), np.array([[1.0, 0, 0]]))
    with pytest.raises(ValueError):
        ev.chaosnli_metrics(np.zeros((1, 3)), np.array([[0.5, 0.6, 0.0]]))
    with pytest.raises(ValueError):
        ev.chaosnli_metrics(np.zeros((2, 3)), np.array([[1.0, 0, 0]]))
    with pytest.raises(ValueError):
        ev.anli_metrics(np.zeros((2, 3)), [0, 3])


def test_from_probs_matches_logits():
    a = ev.chaosnli_metrics(LOGITS, HJD)
    b = ev.chaosnli_metrics_from_probs(np.exp(LOGITS), HJD)
    assert a["kl_published"] == pytest.approx(b["kl_published"], abs=1e-12)


def test_length_sorted_batches():
    batches = ev.length_sorted_batches([3, 9, 1, 9, 5], 2)
    assert batches == [[1, 3], [4, 0], [2]]
    assert ev.length_sorted_batches([3, 9, 1], 2, sort=False) == [[0, 1], [2]]


@pytest.fixture(scope="module")
def tiny_model():
    import torch

    from hlv_assets.lib.encoders import build_classifier

    torch.manual_seed(0)
    tiny = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}
    model, tok, _ = build_classifier("minilm", random_init=tiny)
    return model.eval(), tok


def test_predict_logits_restores_input_order(tiny_model):
    model, tok = tiny_model
    premises = [
        "A dog runs.",
        "The weather today is unusually warm for the middle of November in Munich.",
        "Hi.",
    ]
    hypotheses = ["An animal moves.", "It is warm.", "Hello there, how are you doing on this fine day?"]
    stats: dict = {}
    sorted_logits = ev.predict_logits(model, tok, premises, hypotheses, batch_size=2, stats=stats)
    unsorted = ev.predict_logits(model, tok, premises, hypotheses, batch_size=2, sort_by_length=False)
    single = np.concatenate(
        [
            ev.predict_logits(model, tok, [p], [h], batch_size=1)
            for p, h in zip(premises, hypotheses, strict=True)
        ]
    )
    assert sorted_logits.shape == (3, 3) and sorted_logits.dtype == np.float32
    np.testing.assert_allclose(sorted_logits, single, atol=1e-5)
    np.testing.assert_allclose(unsorted, single, atol=1e-5)
    assert stats["n"] == 3 and stats["samples_per_s"] > 0
    assert not model.training


def test_embed_sentences_minilm():
    from hlv_assets.lib.encoders import embed_sentences

    texts = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is playing the guitar."]
    emb = embed_sentences(texts)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sims = emb @ emb.T
    assert sims[0, 1] > 0.6 > sims[0, 2]
    # order independence (batches are length-sorted internally)
    np.testing.assert_allclose(embed_sentences(texts[::-1])[::-1], emb, atol=1e-5)
