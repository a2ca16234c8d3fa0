"""Distances between label distributions (SPEC §4), vectorised over N×3 arrays.

Conventions:
- KL = KL(P ‖ Q) in nats with P the reference (the HJD); both rows are clipped to [1e-10, 1] and renormalised
  first, so a zero in Q gives a large finite value instead of infinity.
- JSD is the Jensen-Shannon *distance* (natural log, square root), as `scipy.spatial.distance.jensenshannon`.
- TVD = ½ Σ |p − q|.
- D.Corr = distance correlation (the biased V-statistic, equal to `dcor.distance_correlation`) between the two
  N×3 matrices: one global number, 0 when either matrix is constant (as dcor does). Computed tile by tile in
  O(N) memory, so 100,000 items need megabytes, not the 80 GB of an N×N float64 matrix.
Inputs are validated: a NaN, a negative value or a row not summing to 1 raises DistributionError, never a number.
"""

from __future__ import annotations

import math

import numpy as np

from hlv_assets.lib.validation import DistributionError, as_distributions

EPS = 1e-10
#: Tile edge for distance correlation: four float64 tiles of 512×512 are 8 MiB, whatever N is.
DCOR_BLOCK = 512


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


def _tile_distances(xi: np.ndarray, xj: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of xi and of xj into `out`, summed over the columns in the order
    the N×N formula used (so each entry is bit-for-bit the same)."""
    np.subtract(xi[:, 0, None], xj[None, :, 0], out=out)
    np.multiply(out, out, out=out)
    for k in range(1, xi.shape[1]):
        np.subtract(xi[:, k, None], xj[None, :, k], out=tmp)
        np.multiply(tmp, tmp, out=tmp)
        np.add(out, tmp, out=out)
    return np.sqrt(out, out=out)


def _distance_sums(p: np.ndarray, q: np.ndarray, block: int):
    """Row sums r, s of the distance matrices a (of p) and b (of q), and Σ a·b, Σ a², Σ b² over all pairs,
    from the upper-triangle tiles of block×block (each off-diagonal tile counts for itself and its mirror).
    Memory: the two length-N row-sum vectors and four tile buffers, never N×N."""
    n = p.shape[0]
    r, s = np.zeros(n), np.zeros(n)
    ab, aa, bb = [], [], []  # one partial per tile, added exactly by math.fsum
    buffers = [np.empty(min(block, n) ** 2) for _ in range(4)]
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        for j0 in range(i0, n, block):
            j1 = min(j0 + block, n)
            shape = (i1 - i0, j1 - j0)
            a, b, tmp, prod = (buf[: shape[0] * shape[1]].reshape(shape) for buf in buffers)
            _tile_distances(p[i0:i1], p[j0:j1], a, tmp)
            _tile_distances(q[i0:i1], q[j0:j1], b, tmp)
            weight = 1.0 if i0 == j0 else 2.0
            for x, y, partials in ((a, b, ab), (a, a, aa), (b, b, bb)):
                partials.append(weight * np.multiply(x, y, out=prod).sum())
            r[i0:i1] += a.sum(axis=1)
            s[i0:i1] += b.sum(axis=1)
            if j0 != i0:
                r[j0:j1] += a.sum(axis=0)
                s[j0:j1] += b.sum(axis=0)
    return r, s, math.fsum(ab), math.fsum(aa), math.fsum(bb)


def _centred_mean_product(sum_xy: float, rx: np.ndarray, ry: np.ndarray) -> float:
    """Mean of A_ij·B_ij for the double-centred matrices, from the uncentred sums:
    Σ A·B = Σ a·b − (2/n) Σ_i r_i s_i + (Σ r)(Σ s)/n², with r, s the row sums (the matrices are symmetric)."""
    n = rx.shape[0]
    total = sum_xy - 2.0 * math.fsum(rx * ry) / n + math.fsum(rx) * math.fsum(ry) / n / n
    return total / n / n


def distance_correlation(p, q, *, block: int = DCOR_BLOCK) -> float:
    """Biased (V-statistic) distance correlation, the value `dcor.distance_correlation` returns (a test
    checks they agree to 1e-10), in O(N) memory: the N×N distance matrices are visited in block×block tiles
    and never held. numpy rather than dcor because dcor's import costs 4-25 s per process and its
    multivariate estimator holds the N×N matrices (3.2 GB each at 20,000 items). NaN for no rows, as before."""
    p, q = _pair(p, q)
    if block < 1:
        raise ValueError(f"block must be a positive number of rows, got {block}")
    if p.shape[0] == 0:
        return float("nan")
    if (p == p[0]).all() or (q == q[0]).all():
        return 0.0  # every distance is exactly 0, so the variance is 0: skip the O(N²) pass (uniform baseline)
    r, s, sum_ab, sum_aa, sum_bb = _distance_sums(p, q, block)
    dcov2_xy = _centred_mean_product(sum_ab, r, s)
    dvar_x, dvar_y = _centred_mean_product(sum_aa, r, r), _centred_mean_product(sum_bb, s, s)
    if dvar_x <= 0 or dvar_y <= 0:
        return 0.0
    return float(np.sqrt(max(dcov2_xy, 0.0) / np.sqrt(dvar_x * dvar_y)))


def distance_correlation_nxn(p, q) -> float:
    """The same statistic by the textbook formula on the double-centred N×N matrices (this module's
    implementation until 2026-12): O(N²) memory, kept as the reference for the tests and the benchmark."""
    p, q = _pair(p, q)

    def double_centered(x: np.ndarray) -> np.ndarray:
        d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=-1))
        return d - d.mean(axis=0, keepdims=True) - d.mean(axis=1, keepdims=True) + d.mean()

    a, b = double_centered(p), double_centered(q)
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
