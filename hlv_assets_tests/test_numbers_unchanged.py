"""The redesign moved wiring, not science: distributions and MJDs equal those of commit f2b6131.

`golden/distributions_f2b6131.json` was written by running f2b6131 (the last commit before the Dagster-native
redesign) on the real data pack: the five baselines as sha256 of their values rounded to 1e-9 (they are the
data pack's own numbers, not ours to commit), and every MJD row of the embedded judge under the `tiny` and
`demo` profiles as values. This module recomputes them with today's code and compares: baselines exactly,
MJDs to 1e-6. The demo MJDs load the real SmolLM2 judge; `HLV_GOLDEN_SOURCES` picks the explanation sources
(default `none,human`; `all` adds `llama3.varierr-lg-first`, about a minute more).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GOLDEN = json.loads((Path(__file__).parent / "golden" / "distributions_f2b6131.json").read_text())
JUDGE = "smollm2-135m"
ALL_SOURCES = ("none", "human", "llama3.varierr-lg-first")


def _baseline_sha(frame) -> str:
    rows = sorted((str(u), round(float(a), 9), round(float(b), 9), round(float(c), 9))
                  for u, a, b, c in zip(frame.uid, frame.p_e, frame.p_n, frame.p_c))
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def _current(db_url: str, profile: str) -> tuple[dict, dict]:
    """Current baselines by source and MJD rows by (source, conversion, uid) from a results store."""
    from hlv_assets.store.db import get_engine
    from hlv_assets.store.results import ResultStore

    store = ResultStore(get_engine(db_url))
    baselines = {s: store.distribution("baseline_distributions", s, profile)
                 for s in GOLDEN["profiles"][profile]["baselines_sha256"]}
    mjd = {}
    for source in ALL_SOURCES:
        for conversion in ("normalize", "softmax"):
            frame = store.distribution(f"mjd:{conversion}", f"{source}|{JUDGE}", profile)
            for uid, a, b, c in zip(frame.uid, frame.p_e, frame.p_n, frame.p_c):
                mjd[(source, conversion, str(uid))] = (a, b, c)
    return baselines, mjd


def _compare(profile: str, baselines: dict, mjd: dict, sources) -> int:
    golden = GOLDEN["profiles"][profile]
    for source, sha in golden["baselines_sha256"].items():
        assert len(baselines[source]) == golden["baseline_rows"][source], source
        assert _baseline_sha(baselines[source]) == sha, f"{profile} baseline {source} changed"
    compared = 0
    for row in golden["mjd"]:
        if row["source"] not in sources:
            continue
        key = (row["source"], row["conversion"], row["uid"])
        assert key in mjd, f"{profile}: no current MJD row for {key}"
        for got, want in zip(mjd[key], (row["p_e"], row["p_n"], row["p_c"])):
            assert abs(got - want) <= 1e-6, f"{profile} MJD {key}: {mjd[key]} != golden"
        compared += 1
    return compared


def test_tiny_profile_numbers_equal_the_pre_redesign_ones(tiny_graph):
    from hlv_assets.store.db import default_url

    baselines, mjd = _current(default_url(), "tiny")
    assert _compare("tiny", baselines, mjd, ALL_SOURCES) == len(GOLDEN["profiles"]["tiny"]["mjd"]) > 0


def _hlv(env: dict, *argv: str) -> None:
    code = "import sys; from hlv_assets.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"hlv {' '.join(argv)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.mark.slow
def test_demo_profile_numbers_equal_the_pre_redesign_ones(tmp_path, data_dir):
    chosen = os.environ.get("HLV_GOLDEN_SOURCES", "none,human")
    sources = ALL_SOURCES if chosen == "all" else tuple(chosen.split(","))
    env = {**os.environ, "HLV_PROFILE": "demo", "HLV_HOME": str(tmp_path), "HLV_DATA_DIR": str(data_dir),
           "DAGSTER_HOME": str(tmp_path / "dagster"), "HLV_AUTOMATION_STATUS": "stopped",
           "HLV_REGISTRY_SENSOR_STATUS": "stopped"}
    env.pop("HLV_DB_URL", None)
    _hlv(env, "run", "chaosnli_mnli", "varierr_nli", "hlv_items", "released_generations")
    _hlv(env, "run", "baseline_distributions")
    if any("." in s for s in sources):
        _hlv(env, "run", "llm_generations", "--partition", "llama3")
    for source in sources:
        _hlv(env, "run", "explanation_sets", "--partition", source)
        _hlv(env, "run", "mjd", "--partition", f"{JUDGE}/{source}")
    baselines, mjd = _current(f"sqlite:///{tmp_path / 'hlv.db'}", "demo")
    expected = sum(1 for r in GOLDEN["profiles"]["demo"]["mjd"] if r["source"] in sources)
    assert _compare("demo", baselines, mjd, sources) == expected == 40 * len(sources)
