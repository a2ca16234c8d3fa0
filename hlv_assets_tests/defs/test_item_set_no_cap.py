"""Item sets larger than the old 2,000-item cap get their whole-set comparison rows (D.Corr is blockwise now)."""

import json

import dagster as dg
import numpy as np
import pytest

from hlv_assets.cli import items as cli_items
from hlv_assets.lib.metrics import compare
from hlv_assets.store.db import get_engine

N = 2_345  # above the old FULL_COMPARISON_MAX = 2000, not a multiple of the 512-row tiles


def _write_set(path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n items with 5 annotator labels and an HJD; returns (hjd, label distribution) in file order."""
    rng = np.random.default_rng(n)
    hjd = np.round(rng.dirichlet([1, 2, 3], n), 4)
    hjd[:, 2] = 1 - hjd[:, :2].sum(axis=1)
    hjd = np.clip(hjd, 0, 1)
    hjd /= hjd.sum(axis=1, keepdims=True)
    labels = [list(rng.choice(list("enc"), 5, p=row)) for row in hjd]
    with open(path, "w", encoding="utf-8") as f:
        for i, (h, lab) in enumerate(zip(hjd, labels)):
            f.write(json.dumps({"id": f"big-{i}", "premise": f"Premise {i}.", "hypothesis": f"Hypothesis {i}.",
                                "labels": lab, "hjd": h.tolist()}) + "\n")
    counts = np.array([[lab.count(x) for x in "enc"] for lab in labels], dtype=float)
    return hjd, counts / 5


def test_a_set_above_2000_items_gets_its_comparison_rows(home, tmp_path, capsys):
    from hlv_assets.cli.run import load_definitions
    from hlv_assets.defs.partition_sync import sync_item_set_partitions, sync_partitions
    from hlv_assets.defs.resources_defs import default_resources
    from hlv_assets.store.results import ResultStore

    hjd, label_dist = _write_set(tmp_path / "big.jsonl", N)
    assert cli_items.main(["items", "add", "big", str(tmp_path / "big.jsonl"), "--no-partitions"]) == 0
    assert f"{N} items" in capsys.readouterr().out
    instance = dg.DagsterInstance.ephemeral()
    sync_partitions(instance)
    sync_item_set_partitions(instance, get_engine())
    defs = load_definitions()
    result = dg.materialize([*defs.assets, *(defs.asset_checks or [])], selection=dg.AssetSelection.assets("item_set"),
                            partition_key="big", instance=instance, resources=default_resources())
    assert result.success
    rows = {r.data["source"]: r.data for r in ResultStore(get_engine()).current_rows("distribution_comparison", "tiny")
            if r.data.get("item_set") == "big"}
    assert set(rows) == {"labels", "uniform"} and rows["labels"]["n"] == N
    expected = compare(hjd, label_dist)
    assert rows["labels"]["dcor"] == pytest.approx(expected["dcor"], abs=1e-12)
    assert rows["labels"]["kl"] == pytest.approx(expected["kl"], abs=1e-12)
    assert rows["uniform"]["dcor"] == 0.0
