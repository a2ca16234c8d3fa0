"""What the UI shows: a description on every asset and check, partition keys explained where Dagster orders
them its own way, result tables as table metadata with column schemas, plots inline under a size cap."""

from __future__ import annotations

import math

import dagster as dg
import pytest

from hlv_assets.defs.analyses.plots import InlinePlots
from hlv_assets.defs.lineage import COLUMN_DOCS, finetune_table, result_table, stored_rows_table

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # 1,032 bytes: 1,376 base64 characters


@pytest.fixture(scope="module")
def graph():
    from hlv_assets.definitions import defs

    return (defs() if callable(defs) else defs).resolve_asset_graph()


def test_every_asset_and_check_has_a_description(graph):
    keys = sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string())
    assert keys
    missing = [k.to_user_string() for k in keys if not (graph.get(k).description or "").strip()]
    assert missing == []
    checks = sorted(graph.asset_check_keys, key=str)
    assert checks
    missing = [f"{c.asset_key.to_user_string()}:{c.name}" for c in checks
               if not (graph.get(c).description or "").strip()]
    assert missing == []


def test_multi_partitioned_assets_say_how_dagster_writes_their_key(graph):
    """Dagster's key string joins the dimensions sorted by name (`human|smollm2-135m` for judge smollm2-135m
    reading the human explanations): every such asset says so, and gives the `<judge>/<source>` form."""
    unexplained = []
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if isinstance(node.partitions_def, dg.MultiPartitionsDefinition):
            dims = sorted(d.name for d in node.partitions_def.partitions_defs)
            if f"<{dims[0]}>|<{dims[1]}>" not in (node.description or ""):
                unexplained.append((key.to_user_string(), dims))
    assert unexplained == []


def test_result_table_has_a_typed_schema_and_rounds_for_display():
    rows = [{"row_id": "cmp-1", "data": {"source": "uniform", "n": 341, "kl": 0.123456789, "jsd": float("nan"),
                                          "dcor": None, "extra": "not shown"}},
            {"row_id": "cmp-2", "data": {"source": "mnli", "n": 341, "kl": 2.0, "jsd": 0.5, "dcor": 0.25}}]
    table = stored_rows_table(rows, ["id", "source", "n", "kl", "jsd", "dcor", "absent"])
    assert isinstance(table, dg.TableMetadataValue)
    columns = {c.name: c for c in table.schema.columns}
    assert list(columns) == ["id", "source", "n", "kl", "jsd", "dcor"]  # absent from every row: left out
    assert {n: c.type for n, c in columns.items()} == {"id": "string", "source": "string", "n": "int",
                                                      "kl": "float", "jsd": "float", "dcor": "float"}
    assert columns["kl"].description == COLUMN_DOCS["kl"]
    first, second = (r.data for r in table.records)
    assert first == {"id": "cmp-1", "source": "uniform", "n": 341, "kl": 0.1235, "jsd": "nan", "dcor": None}
    assert second["kl"] == 2.0 and second["dcor"] == 0.25
    assert result_table([], ["id", "kl"]).records == []


def test_finetune_table_is_long_split_metric_mean_sd():
    ft = {"source": "uniform", "seeds": [0, 1], "dev_kl_published": 0.51234, "dev_kl_published_sd": 0.01,
          "test_weighted_f1": 0.6, "test_weighted_f1_sd": float("nan"), "encoder_model": "x"}
    ood = {"source": "uniform", "seeds": [0, 1], "r1_accuracy": 0.33333, "r1_accuracy_sd": 0.0}
    records = [r.data for r in finetune_table(ft, ood).records]
    assert records == [
        {"split": "dev", "metric": "kl_published", "mean": 0.5123, "sd": 0.01, "seeds": 2},
        {"split": "test", "metric": "weighted_f1", "mean": 0.6, "sd": "nan", "seeds": 2},
        {"split": "r1", "metric": "accuracy", "mean": 0.3333, "sd": 0.0, "seeds": 2},
    ]
    # the reference asset's rows come from two sources: the table says which
    zero, start = {"source": "zero-shot", "seeds": [0], "test_accuracy": 0.3}, {"source": "start-checkpoint",
                                                                               "seeds": [0], "test_accuracy": 0.8}
    records = [r.data for r in finetune_table(zero, start).records]
    assert [(r["source"], r["mean"], r["sd"]) for r in records] == [("zero-shot", 0.3, None),
                                                                   ("start-checkpoint", 0.8, None)]


def test_inline_plots_stop_at_the_count_and_the_size_cap():
    md_len = len("![a](data:image/png;base64,)") + math.ceil(len(PNG) / 3) * 4
    by_count = InlinePlots(max_count=2, max_kb=100)
    assert [by_count.add(PNG, "a") for _ in range(3)] == [True, True, False]
    by_size = InlinePlots(max_count=10, max_kb=1)  # 1,024 bytes: not even one plot of 1,404 characters
    assert md_len > 1024 and by_size.add(PNG, "a") is False
    by_size = InlinePlots(max_count=10, max_kb=3)  # 3,072 bytes: two plots
    assert [by_size.add(PNG, "a") for _ in range(3)] == [True, True, False]
    text = by_size.markdown(rest=1, folder="/x")
    assert text.count("data:image/png;base64,") == 2 and "1 more plot(s)" in text and "`/x`" in text
