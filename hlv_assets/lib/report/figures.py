"""The report's two figures, also drawn by the `replacement_curves` and `ternary_plots` assets: the replacement
curves of one judge and the HJD / MJD ternary diagram of one MJD's items."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hlv_assets.lib.report.options import PROB
from hlv_assets.lib.ternary import replacement_curve_png, ternary_png


def replacement_figure(records: Sequence[dict], judge: str, *, conversion: str = "softmax", metric: str = "kl",
                       path: Path | str | None = None) -> bytes | None:
    """The replacement curves (model vs noise, metric against r) of one judge from `replacement` rows; None
    when the judge has no rows of that conversion."""
    rows = [r for r in records if r.get("judge") == judge and r.get("conversion") == conversion]
    # rounded to the tables' precision: differences below 1e-5 are noise, and matplotlib would otherwise draw
    # them with an offset axis (the tiny profile's random judge gives near-constant curves)
    curves = {kind: {int(r["r"]): round(float(r[metric]), 5) for r in rows if r.get("kind") == kind}
              for kind in ("model", "noise")}
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return None
    none = [r for r in rows if r.get("kind") == "none"]
    reference = {"no explanations": round(float(none[0][metric]), 5)} if none else None
    n = max(int(r.get("n") or 0) for r in rows)
    model_set = next((r.get("model_set") for r in rows if r.get("model_set")), "")
    profile = next((r.get("profile") for r in rows if r.get("profile")), "")
    title = f"{judge}: {metric.upper()} to the HJD, n = {n} items ({conversion}), profile {profile}"
    if model_set:
        title += f"\nmodel explanations: {model_set}"
    values = [v for c in curves.values() for v in c.values()] + list((reference or {}).values())
    spread = max(values) - min(values)
    if spread < 0.01:  # matplotlib zooms in on any spread: say how small it is
        title += f"\n(all values lie within {spread:.5f} of each other)"
    return replacement_curve_png(curves, metric=f"{metric.upper()} (mean over items)", path=path,
                                 reference=reference, title=title)


def ternary_figure(hjd: pd.DataFrame, mjd: pd.DataFrame, *, title: str, path: Path | str | None = None) -> bytes:
    """HJD and MJD of the MJD's items on one ternary diagram (each item's two points linked)."""
    ref = hjd.set_index("uid")
    missing = [u for u in mjd.uid if u not in ref.index]
    if missing:
        raise KeyError(f"{len(missing)} MJD items have no HJD: {missing[:3]}")
    return ternary_png(ref.loc[list(mjd.uid), PROB].to_numpy(), mjd[PROB].to_numpy(), path=path, title=title,
                       names=("HJD (ChaosNLI)", "MJD"))
