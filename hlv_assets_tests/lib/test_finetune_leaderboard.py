"""The ChaosNLI leaderboard's columns on our fine-tune rows, and which weights a row holds.

The official scorer (easonnie/ChaosNLI, `src/scripts/evaluate.py` -> `src/evaluation/tools.py`, read for this
test, not copied) reads the data file (`label_dist`, `majority_label`) and a prediction file ({model: {uid:
{predicted_probabilities, predicted_label}}}). Per item it floors each predicted probability below 1e-15 at
1e-15 and renormalises, takes `scipy.spatial.distance.jensenshannon(label_dist, prediction)` (the JS
*distance*: square root of the divergence, natural log; a NaN counts as 0), and counts the item for "New Acc."
when `predicted_label` equals `majority_label`. It prints the means over the items. Below that computation is
written out from those definitions and run on our `hlv export --format chaosnli` output.

Two tiny fine-tunes (seeds 42 and 43, random tiny BERT, 4 steps) on the 341 items, evaluated on all 629 + 629
ChaosNLI dev / test items (ties in the 100 votes included) and 16 ANLI R1 items.
"""

from __future__ import annotations

import io
import json
import math
import statistics
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import distance

from hlv_assets.lib import raw
from hlv_assets.lib.finetune import run_finetune
from hlv_assets.lib.profiles import PROFILES
from hlv_assets.lib.report.cells import weights_cell
from hlv_assets.lib.training_plan import ENCODERS, recipe, seed_rows, write_inputs

SEEDS = (42, 43)
LETTERS = "enc"


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    chaos = raw.load_chaosnli(data_dir / raw.CHAOSNLI_MNLI)
    items = raw.load_hlv_items(data_dir / raw.HLV_ITEMS, chaos, raw.load_varierr(data_dir / raw.VARIERR))
    dev = raw.load_chaos_split(data_dir / raw.CHAOS_DEV, chaos, "dev")
    test = raw.load_chaos_split(data_dir / raw.CHAOS_TEST, chaos, "test")
    anli = raw.load_anli(data_dir / raw.anli_path("R1"), "R1").head(16)
    dist = pd.DataFrame({"uid": items.uid, "p_e": [h[0] for h in items.hjd], "p_n": [h[1] for h in items.hjd],
                         "p_c": [h[2] for h in items.hjd]})
    profile = replace(PROFILES["tiny"], eval_items=None, finetune_seeds=SEEDS)
    minilm = next(e for e in ENCODERS if e.name == "minilm")
    per_seed = []
    for seed in profile.finetune_seeds:
        run_dir = home / "checkpoints" / "tiny" / "minilm" / "chaosnli" / f"seed{seed}"
        paths = write_inputs(run_dir / "inputs", items, dist, dev, test, anli, profile)
        config = {**recipe(profile, minilm, seed, tiny_encoder=True), **paths, "device": "cpu"}
        metrics = run_finetune(config, run_dir)
        per_seed.append({"seed": seed, "metrics": metrics, "checkpoint": metrics["checkpoint"]})
    key = {"source": "chaosnli", "llm": None, "explanations": None, "conversion": None}
    ft, ood = seed_rows(per_seed, key, encoder=minilm)
    return {"home": home, "chaos": chaos, "dev": dev, "test": test, "ft": ft, "ood": ood}


def _scorer(data: dict[str, dict], predictions: dict[str, dict]) -> dict[str, tuple[float, float]]:
    """(mean JS distance, New Acc.) per model, from the scorer's documented definitions."""
    out = {}
    for model, by_uid in predictions.items():
        js, hits = [], 0
        for uid, item in data.items():
            human = np.asarray(item["label_dist"], dtype=float)
            pred = np.array(by_uid[uid]["predicted_probabilities"], dtype=float)
            pred[np.abs(pred) < 1e-15] = 1e-15
            pred = pred / pred.sum()
            mid = (human + pred) / 2
            div = 0.5 * sum(p * math.log(p / m) for p, m in zip(human, mid, strict=True) if p > 0) + \
                0.5 * sum(q * math.log(q / m) for q, m in zip(pred, mid, strict=True) if q > 0)
            value = math.sqrt(div) if div >= 0 else 0.0
            assert value == pytest.approx(float(distance.jensenshannon(human, pred)), abs=1e-9)
            js.append(value)
            hits += by_uid[uid]["predicted_label"][0] == item["majority_label"]
        out[model] = (statistics.fmean(js), hits / len(data))
    return out


@pytest.mark.timeout(300)
@pytest.mark.parametrize("split", ["dev", "test"])
def test_the_scorer_on_our_export_gives_our_row(runs, split, monkeypatch, data_dir):
    from hlv_assets.store.export import chaosnli_predictions

    monkeypatch.setenv("HLV_HOME", str(runs["home"]))
    exported = chaosnli_predictions("finetune_minilm_baseline", "chaosnli", "tiny", split=split)
    assert sorted(exported) == [f"finetune_minilm_baseline[chaosnli]/seed{s}" for s in SEEDS]
    evaluated = set(runs[split].uid)
    assert all(set(by_uid) == evaluated for by_uid in exported.values())  # every evaluated item, 629
    release = {}
    with open(data_dir / raw.CHAOSNLI_MNLI, encoding="utf-8") as fh:
        for line in fh:
            obj = json.loads(line)
            if obj["uid"] in evaluated:
                release[obj["uid"]] = obj
    assert len(release) == len(evaluated) == 629
    # items whose 100 votes tie: the release's majority label is not argmax(label_dist) ties-to-first
    ties = [u for u, o in release.items() if LETTERS[int(np.argmax(o["label_dist"]))] != o["majority_label"]]
    assert ties

    scored = _scorer(release, exported)
    ft = runs["ft"]
    for row in ft["per_seed"]:
        jsd, new_acc = scored[f"finetune_minilm_baseline[chaosnli]/seed{row['seed']}"]
        assert row[f"{split}_jsd"] == pytest.approx(jsd, abs=1e-6)
        assert row[f"{split}_majority_accuracy"] == pytest.approx(new_acc, abs=1e-6)
    assert ft[f"{split}_jsd"] == pytest.approx(statistics.fmean(v[0] for v in scored.values()), abs=1e-6)
    assert ft[f"{split}_majority_accuracy"] == pytest.approx(statistics.fmean(v[1] for v in scored.values()),
                                                             abs=1e-6)


def test_rows_say_which_weights_and_keep_each_seed(runs):
    ft, ood = runs["ft"], runs["ood"]
    for row in (ft, ood):
        assert (row["selection"], row["seeds"], row["precision"]) == ("final", [42, 43], "fp32")
        assert [r["seed"] for r in row["per_seed"]] == [42, 43]
    for key in ("dev_jsd", "test_jsd", "dev_majority_accuracy", "test_majority_accuracy", "test_kl_published"):
        values = [r[key] for r in ft["per_seed"]]
        assert ft[key] == pytest.approx(statistics.fmean(values)) and ft[f"{key}_sd"] == pytest.approx(
            statistics.stdev(values))
        assert 0 <= ft[key] <= 1
    assert ood["r1_accuracy"] == pytest.approx(statistics.fmean(r["r1_accuracy"] for r in ood["per_seed"]))
    assert not [k for k in ood if "jsd" in k or "majority" in k]  # ANLI: one gold label, accuracy only
    assert [json.loads((Path(c["path"]) / "checkpoint.json").read_text())["selection"]
            for c in ft["checkpoints"]] == ["final", "final"]
    assert weights_cell(ft) == "final, seeds 42,43 (mean ± sd), fp32"
    assert weights_cell({**ft, "seeds": [42], "selection": "best-dev-macro-f1"}) == "best-dev-macro-f1, seed 42, fp32"


def test_hlv_tables_json_rows_name_selection_seeds_precision(runs, tmp_path, monkeypatch):
    from hlv_assets import cli
    from hlv_assets.store.db import get_engine
    from hlv_assets.store.results import ResultStore, make_row_id

    url = f"sqlite:///{tmp_path / 'hlv.db'}"
    monkeypatch.setenv("HLV_HOME", str(tmp_path))
    monkeypatch.setenv("HLV_DB_URL", url)
    ft = runs["ft"]
    natural = {k: ft[k] for k in ("source", "llm", "explanations", "conversion", "encoder", "encoder_model")}
    ResultStore(get_engine(url)).replace_rows(
        "finetune_comparison", [{"row_id": make_row_id("finetune_comparison", natural, "tiny"),
                                 "items_sha256": "x", "data": ft}],
        asset_key="finetune_minilm_baseline", partition_key="chaosnli", profile="tiny",
        lineage={"run_id": "r", "code_version": "v", "inputs_sha256": "i"})
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["tables", "finetune-comparison", "--format", "json", "--profile", "tiny"]) == 0
    [row] = json.loads(out.getvalue())
    assert list(row)[:10] == ["id", "encoder", "source", "llm", "explanations", "conversion", "profile",
                              "selection", "seeds", "precision"]
    assert (row["selection"], row["seeds"], row["precision"]) == ("final", [42, 43], "fp32")
    for key in ("dev_jsd", "test_jsd", "dev_majority_accuracy", "test_majority_accuracy"):
        assert row[key] == ft[key]
