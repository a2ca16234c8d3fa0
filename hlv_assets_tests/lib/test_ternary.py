"""Ternary plot and replacement curves: projection, valid PNGs, and lazy heavy imports of the analysis modules."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest

from hlv_assets.lib import ternary as T

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_barycentric_projection():
    xy = T.barycentric_to_xy(np.eye(3))
    assert np.allclose(xy, T.CORNERS)
    assert np.allclose(T.barycentric_to_xy([1 / 3, 1 / 3, 1 / 3]), [[0.5, np.sqrt(3) / 6]])
    assert np.allclose(T.barycentric_to_xy([[0.5, 0.5, 0.0]]), [[0.5, 0.0]])
    for bad in ([0.5, 0.6, 0.0], [1.2, -0.2, 0.0], [np.nan, 0.5, 0.5], [[0.5, 0.5]]):
        with pytest.raises(ValueError):
            T.barycentric_to_xy(bad)


def test_ternary_png_of_real_hjd(data_dir, tmp_path):
    lines = (data_dir / "mjd_estimator" / "MJD-generator" / "NLI_explanations.json").read_text().splitlines()
    items = [json.loads(line) for line in lines if line.strip()]
    hjd = np.array([it["chaos probs"] for it in items])
    hjd = hjd / hjd.sum(axis=1, keepdims=True)
    counts = np.array([it["varierr labels"] for it in items], dtype=float)
    mjd = 0.7 * counts / counts.sum(axis=1, keepdims=True) + 0.3 * hjd  # a stand-in second distribution
    path = tmp_path / "plots" / "ternary.png"
    data = T.ternary_png(hjd, mjd, path=path, title="341 items: HJD vs a stand-in")
    assert path.read_bytes() == data
    w, h = png_size(data)
    assert 400 <= w <= 1500 and 400 <= h <= 1500
    assert 10_000 < len(data) < 2_000_000
    alone = T.ternary_png(hjd[:10], link=False)
    assert png_size(alone)[0] > 300
    with pytest.raises(ValueError):
        T.ternary_png(hjd[:5], mjd[:4])


def test_replacement_curve_png(tmp_path):
    curves = {
        "model": {0: 0.240, 1: 0.239, 2: 0.238, 3: 0.236, 4: 0.234},
        "noise": [0.240, 0.247, 0.255, 0.262, 0.270],
    }
    data = T.replacement_curve_png(
        curves, metric="KL", reference={"no explanations": 0.259}, path=tmp_path / "kl.png"
    )
    w, h = png_size(data)
    assert 300 <= w <= 1200 and 200 <= h <= 1000 and len(data) > 5_000
    assert (tmp_path / "kl.png").read_bytes() == data
    with pytest.raises(ValueError):
        T.replacement_curve_png({})


def test_analysis_modules_import_no_heavy_library():
    code = (
        "import sys\n"
        "import hlv_assets.lib.variability, hlv_assets.lib.preference, hlv_assets.lib.replacement\n"
        "import hlv_assets.lib.ternary\n"
        "heavy = [m for m in ('matplotlib', 'torch', 'transformers', 'spacy', 'dagster', 'openpyxl') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
