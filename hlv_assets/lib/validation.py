"""Input validation errors that name the file, the line and the field; and checks of distributions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


class DataFormatError(ValueError):
    """Bad input: says which file, which line (1-based; 0 for the whole file) and which field."""

    def __init__(self, path: str | Path, line: int, field: str, message: str):
        self.path, self.line, self.field = str(path), line, field
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: field {field!r}: {message}")


class DistributionError(ValueError):
    """An array that is not a probability distribution (NaN, negative, not summing to 1, wrong shape)."""


def check_label_vector(values, path, line: int, field: str, *, kind: str = "distribution", length: int = 3):
    """Validate one label vector read from a file and return it as floats.

    kind "distribution": non-negative reals summing to 1 (within 1e-6); kind "counts": non-negative integers.
    """
    if not isinstance(values, list) or len(values) != length:
        got = f"{len(values)} values" if isinstance(values, list) else type(values).__name__
        raise DataFormatError(path, line, field, f"expected a list of {length} numbers, got {got}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise DataFormatError(path, line, field, f"{v!r} is not a number")
        if isinstance(v, float) and math.isnan(v):
            raise DataFormatError(path, line, field, "NaN is not a probability")
        if v < 0:
            raise DataFormatError(path, line, field, f"negative value {v}")
        if kind == "counts" and int(v) != v:
            raise DataFormatError(path, line, field, f"count {v} is not an integer")
        out.append(float(v))
    if kind == "distribution" and abs(sum(out) - 1.0) > 1e-6:
        raise DataFormatError(path, line, field, f"values sum to {sum(out):.6g}, not 1")
    return out


def as_distributions(values, name: str = "distribution", atol: float = 1e-6) -> np.ndarray:
    """Return `values` as an N×3 float array after checking each row is a distribution; never coerces."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise DistributionError(f"{name}: expected an N×3 array, got shape {arr.shape}")
    if np.isnan(arr).any():
        rows = np.flatnonzero(np.isnan(arr).any(axis=1))[:10].tolist()
        raise DistributionError(f"{name}: NaN in rows {rows}")
    if (arr < 0).any() or (arr > 1).any():
        rows = np.flatnonzero(((arr < 0) | (arr > 1)).any(axis=1))[:10].tolist()
        raise DistributionError(f"{name}: values outside [0, 1] in rows {rows}")
    sums = arr.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > atol)
    if bad.size:
        raise DistributionError(f"{name}: rows {bad[:10].tolist()} sum to {sums[bad[:3]].tolist()}, not 1")
    return arr
