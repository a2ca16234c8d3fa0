"""Distances between label distributions (SPEC §4), vectorised over N×3 arrays.

Conventions:
- KL = KL(P ‖ Q) in nats with P the reference (the HJD); both rows are clipped to [1e-10, 1] and renormalised
  first, so a zero in Q gives a large finite value instead of infinity.
- JSD is the Jensen-Shannon *distance* (natural log, square root), as `scipy.spatial.distance.jensenshannon`.
- TVD = ½ Σ |p − q|.
- D.Corr = distance correlation (the biased V-statistic, equal to `dcor.distance_correlation`) between the two
  N×3 matrices: one global number, 0 when either matrix is constant (as dcor does).
Inputs are validated: a NaN, a negative value or a row not summing to 1 raises DistributionError, never a number.
"""

from __future__ import annotations

import numpy as np

from hlv_assets.lib.validation import DistributionError, as_distributions

EPS = 1e-10


def _pair(p, q) -> tuple[np.ndarray, np.ndarray]:
    p, q = as_distributions(p, "reference"), as_distributions(q, "comparison")
    if p.shape != q.shape:
        raise DistributionError(f"shapes differ: {p.shape} vs {q.shape}")
    return p, q


def kl_per_item(p, q) -> np.ndarray:
    p, q = _pair(p, q)
    p = np.clip(p, EPS, 1.0)
    q = np.clip(q, EPS, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    q = q / q.sum(axis=1, keepdims=True)
    return np.sum(p * np.log(p / q), axis=1)


def jsd_per_item(p, q) -> np.ndarray:
    p, q = _pair(p, q)
    m = (p + q) / 2.0

    def rel(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log(a / b), 0.0)

    js = (rel(p, m).sum(axis=1) + rel(q, m).sum(axis=1)) / 2.0
    return np.sqrt(np.maximum(js, 0.0))


def tvd_per_item(p, q) -> np.ndarray:
    p, q = _pair(p, q)
    return 0.5 * np.abs(p - q).sum(axis=1)


def _double_centered(x: np.ndarray) -> np.ndarray:
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1))
    return d - d.mean(axis=0, keepdims=True) - d.mean(axis=1, keepdims=True) + d.mean()


def distance_correlation(p, q) -> float:
    """Biased (V-statistic) distance correlation, the value `dcor.distance_correlation` returns (a test
    checks they agree); computed here in numpy because dcor's import and JIT cost ~25 s per process."""
    p, q = _pair(p, q)
    a, b = _double_centered(p), _double_centered(q)
    dcov2_xy = (a * b).mean()
    dvar_x, dvar_y = (a * a).mean(), (b * b).mean()
    if dvar_x <= 0 or dvar_y <= 0:
        return 0.0
    return float(np.sqrt(max(dcov2_xy, 0.0) / np.sqrt(dvar_x * dvar_y)))


def compare(p, q) -> dict[str, float]:
    """Mean KL, JSD, TVD over the items, D.Corr and n: one row of the distribution-comparison table."""
    p, q = _pair(p, q)
    return {
        "kl": float(kl_per_item(p, q).mean()),
        "jsd": float(jsd_per_item(p, q).mean()),
        "tvd": float(tvd_per_item(p, q).mean()),
        "dcor": distance_correlation(p, q),
        "n": int(p.shape[0]),
    }
