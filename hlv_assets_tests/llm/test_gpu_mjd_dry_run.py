"""`benchmarks/gpu_mjd.py --dry-run` (what CI runs of the GPU benchmark): the tiny Llama on CPU scores the full
24-order grid of 2 items three ways, and the prefix tree runs the fewest tokens with the same probabilities."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_gpu_mjd_dry_run_compares_forward_prefix_and_tree():
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_mjd.py", "--dry-run"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    methods = report["methods"]
    assert set(methods) == {"forward", "prefix", "tree"}
    assert report["prompts"] == 2 * 24 * 6  # 2 items x 24 explanation orders x 6 option orders
    tokens = {name: m["tokens_run"] for name, m in methods.items()}
    assert tokens["tree"] < tokens["prefix"] < tokens["forward"] == report["prompt_tokens"]
    assert methods["tree"]["max_abs_dp_vs_forward"] <= 1e-5
    assert methods["prefix"]["max_abs_dp_vs_forward"] <= 1e-5
    for m in methods.values():
        assert m["seconds"] > 0 and m["forward_calls"] > 0
        assert 0 < m["tflop"] <= methods["forward"]["tflop"]
