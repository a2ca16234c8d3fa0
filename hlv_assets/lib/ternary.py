"""Ternary (simplex) plots of label distributions and line plots of replacement curves, as PNG.

Distributions are rows [p_E, p_N, p_C] (SPEC §1 order). The barycentric projection is written out here:
corners E = (0, 0), N = (1, 0), C = (1/2, √3/2), so a point p maps to (p_N + p_C / 2, p_C · √3/2).
matplotlib is imported inside the functions; figures are drawn on their own Agg canvas (no pyplot state,
no display, the process-wide backend untouched).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "CORNERS",
    "barycentric_to_xy",
    "replacement_curve_png",
    "ternary_png",
]

_H = math.sqrt(3.0) / 2.0
#: x, y of the corners E, N, C.
CORNERS: np.ndarray = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, _H]])


def barycentric_to_xy(dist) -> np.ndarray:
    """Project N×3 distributions [E, N, C] (each row summing to 1) onto the plane: N×2 array.

    Rows are checked: non-negative, finite, summing to 1 within 1e-6.
    """
    p = np.asarray(dist, dtype=float)
    if p.ndim == 1:
        p = p[None, :]
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"expected an N×3 array of distributions, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < -1e-12).any() or (np.abs(p.sum(axis=1) - 1.0) > 1e-6).any():
        bad = np.flatnonzero(
            ~np.isfinite(p).all(axis=1) | (p < -1e-12).any(axis=1) | (np.abs(p.sum(axis=1) - 1) > 1e-6)
        )
        raise ValueError(f"rows {bad[:10].tolist()} are not probability distributions")
    return p @ CORNERS


def _figure(figsize: tuple[float, float]):
    """A figure on its own Agg canvas: no pyplot, no global backend switch, no display needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _save(fig, path: Path | str | None, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    data = buf.getvalue()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data


def _draw_triangle(ax, labels: Sequence[str], grid: int) -> None:
    tri = np.vstack([CORNERS, CORNERS[:1]])
    ax.plot(tri[:, 0], tri[:, 1], color="black", linewidth=1.0, zorder=1)
    for k in range(1, grid):
        t = k / grid
        for a, b, c in ((0, 1, 2), (1, 2, 0), (2, 0, 1)):
            # the line where component a equals t: between the points t·corner_a + (1-t)·corner_b / corner_c
            p1 = t * CORNERS[a] + (1 - t) * CORNERS[b]
            p2 = t * CORNERS[a] + (1 - t) * CORNERS[c]
            ax.plot([p1[0], p2[0]], [p1[1], p2[1]], color="0.85", linewidth=0.6, zorder=0)
    offsets = [(-0.04, -0.04, "right", "top"), (0.04, -0.04, "left", "top"), (0.0, 0.04, "center", "bottom")]
    for (x, y), label, (dx, dy, ha, va) in zip(CORNERS, labels, offsets, strict=True):
        ax.text(x + dx, y + dy, label, ha=ha, va=va, fontsize=14, fontweight="bold")
    ax.set_xlim(-0.12, 1.12)
    ax.set_ylim(-0.12, _H + 0.12)
    ax.set_aspect("equal")
    ax.axis("off")


def ternary_png(
    hjd,
    mjd=None,
    *,
    path: Path | str | None = None,
    link: bool = True,
    labels: Sequence[str] = ("E", "N", "C"),
    names: Sequence[str] = ("HJD", "MJD"),
    colors: Sequence[str] = ("tab:blue", "tab:orange"),
    title: str | None = None,
    grid: int = 5,
    point_size: float = 14.0,
    alpha: float = 0.7,
    figsize: tuple[float, float] = (6.0, 5.6),
    dpi: int = 120,
) -> bytes:
    """Ternary plot of each item's HJD (and MJD) point; returns the PNG bytes (and writes `path` if given).

    `hjd`, `mjd`: N×3 arrays in [E, N, C] order (`mjd` optional, same N). `link` draws a thin grey line from
    an item's HJD point to its MJD point. `grid` = number of divisions of the guide lines (0/1: none).
    """
    xy_h = barycentric_to_xy(hjd)
    xy_m = None
    if mjd is not None:
        xy_m = barycentric_to_xy(mjd)
        if xy_m.shape != xy_h.shape:
            raise ValueError(f"hjd has {len(xy_h)} items but mjd has {len(xy_m)}")
    fig, ax = _figure(figsize)
    _draw_triangle(ax, labels, grid)
    if xy_m is not None and link:
        from matplotlib.collections import LineCollection

        segments = np.stack([xy_h, xy_m], axis=1)
        ax.add_collection(LineCollection(segments, colors="0.6", linewidths=0.5, alpha=0.6, zorder=2))
    ax.scatter(xy_h[:, 0], xy_h[:, 1], s=point_size, c=colors[0], alpha=alpha, label=names[0], zorder=3)
    if xy_m is not None:
        ax.scatter(xy_m[:, 0], xy_m[:, 1], s=point_size, c=colors[1], alpha=alpha, label=names[1], zorder=4)
    ax.legend(loc="upper right", frameon=False)
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)


def replacement_curve_png(
    curves: Mapping[str, Mapping[int, float] | Sequence[float]],
    *,
    metric: str = "metric",
    path: Path | str | None = None,
    reference: Mapping[str, float] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (5.5, 3.8),
    dpi: int = 120,
) -> bytes:
    """Line plot of a metric against the number r of replaced explanations, one line per curve.

    `curves`: name (e.g. "model", "noise") -> {r: value} or a sequence of values for r = 0, 1, ...
    `reference`: optional horizontal lines (name -> value), e.g. the MJD without explanations.
    """
    if not curves:
        raise ValueError("no curves to plot")
    fig, ax = _figure(figsize)
    markers = ["o", "s", "^", "D", "v", "P"]
    all_r: set[int] = set()
    for k, (name, values) in enumerate(curves.items()):
        if isinstance(values, Mapping):
            pts = sorted((int(r), float(v)) for r, v in values.items())
        else:
            pts = [(r, float(v)) for r, v in enumerate(values)]
        if not pts:
            raise ValueError(f"curve {name!r} is empty")
        rs, vs = zip(*pts, strict=True)
        all_r.update(rs)
        ax.plot(rs, vs, marker=markers[k % len(markers)], label=name)
    for name, value in (reference or {}).items():
        ax.axhline(float(value), linestyle="--", linewidth=1.0, color="0.4")
        ax.annotate(
            name,
            (max(all_r), float(value)),
            textcoords="offset points",
            xytext=(0, 3),
            ha="right",
            fontsize=8,
        )
    ax.set_xticks(sorted(all_r))
    ax.set_xlabel("r (explanations replaced of 4)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)
