"""Metrics of a fine-tuned NLI classifier (SPEC §5) and batched prediction.

Everything here works on plain numpy arrays in the label order [E, N, C]:

- ChaosNLI dev/test (soft HJD targets): `chaosnli_metrics(logits, hjd)`
  - ``kl_published``: ``F.kl_div(log_softmax(logits), hjd, reduction='mean')``, i.e. the sum over all
    elements divided by N × 3 = the per-item KL(HJD ‖ model) averaged over items, divided by 3
    (the number the papers report as "KL"; computed explicitly here, so torch's announced change of
    ``reduction='mean'`` to mean ``'batchmean'`` cannot shift it);
  - ``kl_per_item``: the mean over items of KL(HJD ‖ model) in nats (= 3 × ``kl_published``);
  - ``ce_loss``: mean over items of −Σ HJD · log p;
  - ``weighted_f1``, ``macro_f1``, ``accuracy`` of argmax(prediction) against argmax(HJD); ties go to
    the first of E, N, C (``numpy.argmax`` returns the first maximum);
  - the ChaosNLI scorer's columns: ``jsd`` (mean Jensen-Shannon distance, natural log) and, with ChaosNLI's
    ``majority_label`` per item, ``majority_accuracy`` ("New Acc."; the release breaks 100-vote ties by its
    own order, so it differs from ``accuracy`` on tied items).
- ANLI (one gold label per item): `anli_metrics(logits, gold)`: weighted F1, macro F1, accuracy, CE loss.

F1 is computed in numpy (the same definition as ``sklearn.metrics.f1_score`` with
``labels=[0, 1, 2]`` and ``zero_division=0``; the tests check the two agree) so that the training
entry point does not need scikit-learn at run time.

`predict_logits` runs a sequence-classification model over (premise, hypothesis) pairs in batches
sorted by tokenised length (less padding) and returns the logits in the input order. torch is
imported lazily, inside the functions that need it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

NUM_LABELS = 3


# --------------------------------------------------------------------------------------------------
# numpy helpers
# --------------------------------------------------------------------------------------------------


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis, in float64."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    return np.exp(log_softmax(logits))


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x · log(y) with 0 · log(anything) = 0 (the convention of ``torch.nn.functional.kl_div``)."""
    out = np.zeros_like(x, dtype=np.float64)
    mask = x != 0
    out[mask] = x[mask] * np.log(y[mask])
    return out


def _check_2d(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != NUM_LABELS:
        raise ValueError(f"{name} must have shape (N, 3), got {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _check_distribution(name: str, p: np.ndarray) -> np.ndarray:
    p = _check_2d(name, p)
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError(f"{name} rows must be probability distributions (non-negative, summing to 1)")
    return p


def argmax_labels(scores: np.ndarray) -> np.ndarray:
    """argmax over [E, N, C]; ties go to the first label (numpy's argmax returns the first maximum)."""
    return np.asarray(scores).argmax(axis=-1)


def f1_scores(y_true: np.ndarray, y_pred: np.ndarray, num_labels: int = NUM_LABELS) -> dict[str, float]:
    """Per-class, macro and support-weighted F1 plus accuracy.

    Same definition as ``sklearn.metrics.f1_score(labels=range(num_labels), zero_division=0)``: a
    class with no true and no predicted items has F1 0 and counts in the macro mean.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or len(y_true) == 0:
        raise ValueError("y_true and y_pred must be non-empty 1-d arrays of the same length")
    per_class = np.zeros(num_labels)
    support = np.zeros(num_labels)
    for k in range(num_labels):
        tp = float(np.sum((y_true == k) & (y_pred == k)))
        fp = float(np.sum((y_true != k) & (y_pred == k)))
        fn = float(np.sum((y_true == k) & (y_pred != k)))
        support[k] = tp + fn
        denom = 2 * tp + fp + fn
        per_class[k] = 2 * tp / denom if denom > 0 else 0.0
    weighted = float(np.sum(per_class * support) / support.sum()) if support.sum() > 0 else 0.0
    return {
        "macro_f1": float(per_class.mean()),
        "weighted_f1": weighted,
        "accuracy": float(np.mean(y_true == y_pred)),
        "f1_per_class": [float(v) for v in per_class],
    }


# --------------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------------


def kl_published(logits: np.ndarray, hjd: np.ndarray) -> float:
    """``F.kl_div(log_softmax(logits), hjd, reduction='mean')``: mean over all N × 3 elements."""
    logp = log_softmax(_check_2d("logits", logits))
    p = _check_distribution("hjd", hjd)
    return float(np.mean(_xlogy(p, p) - p * logp))


def kl_per_item(logits: np.ndarray, hjd: np.ndarray) -> np.ndarray:
    """KL(HJD ‖ softmax(logits)) per item, in nats."""
    logp = log_softmax(_check_2d("logits", logits))
    p = _check_distribution("hjd", hjd)
    return (_xlogy(p, p) - p * logp).sum(axis=1)


def soft_ce_loss(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean over items of −Σ target · log softmax(logits) (cross-entropy with probability targets)."""
    logp = log_softmax(_check_2d("logits", logits))
    p = _check_distribution("targets", targets)
    return float(np.mean(-(p * logp).sum(axis=1)))


SCORER_FLOOR = 1e-15


def scorer_jsd_per_item(logits: np.ndarray, hjd: np.ndarray) -> np.ndarray:
    """The ChaosNLI scorer's JSD per item: Jensen-Shannon *distance* (natural log, the square root of the
    divergence, as `scipy.spatial.distance.jensenshannon`) between the HJD and the model's probabilities, the
    latter floored at 1e-15 and renormalised first, as the scorer does with a prediction file."""
    from hlv_assets.lib.metrics import jsd_per_item

    probs = softmax(_check_2d("logits", logits))
    probs = np.where(np.abs(probs) < SCORER_FLOOR, SCORER_FLOOR, probs)
    return jsd_per_item(_check_distribution("hjd", hjd), probs / probs.sum(axis=1, keepdims=True))


def chaosnli_metrics(logits: np.ndarray, hjd: np.ndarray, majority: Sequence[int] | np.ndarray | None = None
                     ) -> dict[str, Any]:
    """ChaosNLI metrics of model logits against the human judgment distributions (SPEC §5), with the
    ChaosNLI leaderboard's two: ``jsd`` (mean `scorer_jsd_per_item`) and, given each item's ChaosNLI
    ``majority`` label (index in [E, N, C]), ``majority_accuracy`` (the scorer's "New Acc.": argmax of the
    prediction, ties to the first label, equal to the majority label)."""
    logits = _check_2d("logits", logits)
    hjd = _check_distribution("hjd", hjd)
    if logits.shape != hjd.shape:
        raise ValueError(f"logits {logits.shape} and hjd {hjd.shape} differ in shape")
    per_item = kl_per_item(logits, hjd)
    f1 = f1_scores(argmax_labels(hjd), argmax_labels(logits))
    out = {
        "n": int(len(hjd)),
        "kl_published": kl_published(logits, hjd),
        "kl_per_item": float(per_item.mean()),
        "ce_loss": soft_ce_loss(logits, hjd),
        "weighted_f1": f1["weighted_f1"],
        "macro_f1": f1["macro_f1"],
        "accuracy": f1["accuracy"],
        "f1_per_class": f1["f1_per_class"],
        "jsd": float(scorer_jsd_per_item(logits, hjd).mean()),
    }
    if majority is not None:
        majority = np.asarray(majority, dtype=np.int64)
        if majority.shape != (len(hjd),) or np.any((majority < 0) | (majority >= NUM_LABELS)):
            raise ValueError(f"majority must be {len(hjd)} label indices in 0..2")
        out["majority_accuracy"] = float(np.mean(argmax_labels(logits) == majority))
    return out


def chaosnli_metrics_from_probs(probs: np.ndarray, hjd: np.ndarray, eps: float = 1e-12) -> dict[str, Any]:
    """The same metrics from predicted probabilities (log taken after clipping to ``eps``)."""
    probs = _check_distribution("probs", probs)
    return chaosnli_metrics(np.log(np.clip(probs, eps, 1.0)), hjd)


def anli_metrics(logits: np.ndarray, gold: Sequence[int] | np.ndarray) -> dict[str, Any]:
    """ANLI metrics against the single gold label (index in [E, N, C])."""
    logits = _check_2d("logits", logits)
    gold = np.asarray(gold, dtype=np.int64)
    if gold.shape != (len(logits),):
        raise ValueError(f"gold must have shape ({len(logits)},), got {gold.shape}")
    if np.any((gold < 0) | (gold >= NUM_LABELS)):
        raise ValueError("gold labels must be 0 (E), 1 (N) or 2 (C)")
    logp = log_softmax(logits)
    f1 = f1_scores(gold, argmax_labels(logits))
    return {
        "n": int(len(gold)),
        "weighted_f1": f1["weighted_f1"],
        "macro_f1": f1["macro_f1"],
        "accuracy": f1["accuracy"],
        "ce_loss": float(np.mean(-logp[np.arange(len(gold)), gold])),
        "f1_per_class": f1["f1_per_class"],
    }


# --------------------------------------------------------------------------------------------------
# batched prediction
# --------------------------------------------------------------------------------------------------


def length_sorted_batches(lengths: Sequence[int], batch_size: int, sort: bool = True) -> list[list[int]]:
    """Index batches; with ``sort`` the items are ordered by decreasing length (stable) first."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i]) if sort else list(range(len(lengths)))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def predict_logits(
    model: Any,
    tokenizer: Any,
    premises: Sequence[str],
    hypotheses: Sequence[str],
    *,
    batch_size: int = 64,
    max_length: int = 128,
    device: Any = None,
    sort_by_length: bool = True,
    bf16: bool = False,
    stats: dict[str, Any] | None = None,
) -> np.ndarray:
    """Logits (N × num_labels, float32) of ``model`` on the pairs, in the input order.

    The pairs are tokenised once without padding; batches are formed from the items sorted by
    length (``sort_by_length``) and padded to their own longest item. ``bf16`` autocasts the forward
    pass to bfloat16 (CUDA only; ignored elsewhere). If ``stats`` is given, ``seconds`` and
    ``samples_per_s`` are written into it. The model's train/eval mode is restored afterwards.
    """
    import torch

    if len(premises) != len(hypotheses):
        raise ValueError("premises and hypotheses differ in length")
    n = len(premises)
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    num_labels = int(getattr(model.config, "num_labels", NUM_LABELS))
    if n == 0:
        return np.zeros((0, num_labels), dtype=np.float32)
    start = time.perf_counter()
    enc = tokenizer(list(premises), list(hypotheses), truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
    lengths = [len(ids) for ids in enc["input_ids"]]
    out = np.zeros((n, num_labels), dtype=np.float32)
    use_autocast = bool(bf16) and device.type == "cuda"
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for idx in length_sorted_batches(lengths, batch_size, sort=sort_by_length):
                features = [{k: enc[k][i] for k in keys} for i in idx]
                batch = tokenizer.pad(features, padding=True, return_tensors="pt")
                batch = {k: v.to(device) for k, v in batch.items()}
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_autocast):
                    logits = model(**batch).logits
                out[idx] = logits.float().cpu().numpy()
    finally:
        model.train(was_training)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if stats is not None:
        seconds = time.perf_counter() - start
        stats["seconds"] = seconds
        stats["samples_per_s"] = n / seconds if seconds > 0 else float("inf")
        stats["n"] = n
    return out
