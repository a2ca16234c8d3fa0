"""Results store semantics on SQLite and PostgreSQL: replace in one transaction, history, concurrency."""

import multiprocessing as mp

import pandas as pd
import pytest

from hlv_assets.store.db import get_engine
from hlv_assets.store.results import NonFiniteValueError, ResultStore, SqlCallStore, make_row_id


def rows(n, tag):
    return [{"row_id": f"{tag}-{i}", "items_sha256": "h", "data": {"kl": float(i), "tag": tag}} for i in range(n)]


def test_replace_keeps_history_and_no_duplicates(db_url, unique):
    store = ResultStore(get_engine(db_url))
    kw = dict(asset_key=f"a{unique}", partition_key="p", profile="demo", lineage={"run_id": "r1"})
    store.replace_rows("t" + unique, rows(3, unique), **kw)
    store.replace_rows("t" + unique, rows(3, unique), **{**kw, "lineage": {"run_id": "r2"}})
    current = store.current_rows("t" + unique)
    assert len(current) == 3 and {r.run_id for r in current} == {"r2"}
    versions = store.row_versions(f"{unique}-0")
    assert [v.run_id for v in versions] == ["r2", "r1"] and [v.current for v in versions] == [True, False]


def test_a_failed_write_leaves_the_old_rows_current(db_url, unique):
    store = ResultStore(get_engine(db_url))
    kw = dict(asset_key=f"a{unique}", partition_key="p", profile="demo", lineage={"run_id": "r1"})
    store.replace_rows("t" + unique, rows(2, unique), **kw)

    def exploding():
        yield rows(1, unique)[0]
        raise RuntimeError("crash halfway")

    with pytest.raises(RuntimeError):
        store.replace_rows("t" + unique, exploding(), **{**kw, "lineage": {"run_id": "r2"}})
    current = store.current_rows("t" + unique)
    assert len(current) == 2 and {r.run_id for r in current} == {"r1"}


def test_profiles_never_overwrite_each_other(db_url, unique):
    store = ResultStore(get_engine(db_url))
    for profile in ("demo", "paper"):
        store.replace_rows("t" + unique, rows(2, profile + unique), asset_key="a", partition_key="",
                           profile=profile, lineage={})
    assert len(store.current_rows("t" + unique)) == 4
    assert len(store.current_rows("t" + unique, "paper")) == 2


def test_row_ids_are_stable_and_distinct():
    a = make_row_id("distribution_comparison", {"source": "mnli"}, "demo")
    assert a == make_row_id("distribution_comparison", {"source": "mnli"}, "demo")
    assert a != make_row_id("distribution_comparison", {"source": "mnli"}, "paper")
    assert a != make_row_id("finetune_comparison", {"source": "mnli"}, "demo") and a.startswith("dc-")


def test_distributions_round_trip(db_url, unique):
    store = ResultStore(get_engine(db_url))
    frame = pd.DataFrame({"uid": ["a", "b"], "p_e": [0.1, 0.2], "p_n": [0.3, 0.3], "p_c": [0.6, 0.5]})
    for _ in range(2):
        store.replace_distribution(frame, asset_key=f"d{unique}", partition_key="x", profile="demo",
                                   item_set="s", lineage={})
    back = store.distribution(f"d{unique}", "x", "demo")
    assert back.equals(frame)


def test_call_store_is_durable_per_put(db_url, unique):
    calls = SqlCallStore(get_engine(db_url))
    calls.put(f"k{unique}", {"text": "hello", "backend": "fake"})
    calls.put(f"k{unique}", {"text": "hello", "backend": "fake"})  # idempotent
    assert calls.get_many([f"k{unique}", "missing"]) == {f"k{unique}": {"text": "hello", "backend": "fake"}}


def _writer(db_url, table, partition, n, barrier):
    store = ResultStore(get_engine(db_url))
    barrier.wait()
    for round_ in range(5):
        store.replace_rows(table, [{"row_id": f"{table}-{partition}-{i}", "items_sha256": "",
                                    "data": {"round": round_}}
                                   for i in range(n)], asset_key="a", partition_key=partition, profile="demo",
                           lineage={"run_id": f"{partition}-{round_}"})


def test_concurrent_writers_of_different_partitions_lose_and_duplicate_nothing(db_url, unique):
    get_engine(db_url)  # create tables before the writers race
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(db_url, "c" + unique, p, 40, barrier)) for p in ("p1", "p2")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    store = ResultStore(get_engine(db_url))
    current = store.current_rows("c" + unique)
    assert len(current) == 80 and len({r.row_id for r in current}) == 80
    assert {r.data["round"] for r in current} == {4}
    assert sum(len(store.row_versions(f"c{unique}-p1-{i}")) for i in range(40)) == 200  # 5 versions each


def test_concurrent_writers_of_the_same_partition_leave_one_current_set(db_url, unique):
    get_engine(db_url)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(db_url, "s" + unique, "same", 30, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    current = ResultStore(get_engine(db_url)).current_rows("s" + unique)
    assert len(current) == 30 and len({r.row_id for r in current}) == 30


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_probabilities_are_refused_and_the_old_rows_stay_current(db_url, unique, bad):
    store = ResultStore(get_engine(db_url))
    good = pd.DataFrame({"uid": ["a", "b"], "p_e": [0.1, 0.2], "p_n": [0.3, 0.3], "p_c": [0.6, 0.5]})
    kw = dict(asset_key=f"d{unique}", partition_key="x", profile="demo", item_set="s")
    store.replace_distribution(good, **kw, lineage={"run_id": "r1"})
    broken = good.assign(p_n=[0.3, bad])
    with pytest.raises(NonFiniteValueError) as err:
        store.replace_distribution(broken, **kw, lineage={"run_id": "r2"})
    message = str(err.value)
    assert "\n" not in message and f"d{unique}[x]" in message and "uid b" in message and "'p_n'" in message
    back = store.distribution(f"d{unique}", "x", "demo")
    assert back.equals(good)
    assert store.distribution_lineage(f"d{unique}", "x", "demo").run_id == "r1"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_values_in_result_rows_are_refused(db_url, unique, bad):
    store = ResultStore(get_engine(db_url))
    kw = dict(asset_key=f"a{unique}", partition_key="p", profile="demo")
    store.replace_rows("t" + unique, rows(2, unique), **kw, lineage={"run_id": "r1"})
    broken = rows(2, unique)
    broken[1]["data"] = {"kl": 0.1, "per_seed": [{"kl": bad}]}
    with pytest.raises(NonFiniteValueError) as err:
        store.replace_rows("t" + unique, broken, **kw, lineage={"run_id": "r2"})
    message = str(err.value)
    assert "\n" not in message and f"{unique}-1" in message and "per_seed.0.kl" in message and f"a{unique}[p]" in message
    current = store.current_rows("t" + unique)
    assert {r.run_id for r in current} == {"r1"} and len(current) == 2


def test_a_forced_write_is_recorded_in_each_row(db_url, unique):
    store = ResultStore(get_engine(db_url))
    store.replace_rows("t" + unique, rows(2, unique), asset_key="a", partition_key="", profile="demo",
                       lineage={"run_id": "r1", "forced": True})
    assert [r.data["forced"] for r in store.current_rows("t" + unique)] == [True, True]
    store.replace_rows("t" + unique, rows(2, unique), asset_key="a", partition_key="", profile="demo",
                       lineage={"run_id": "r2"})
    assert ["forced" in r.data for r in store.current_rows("t" + unique)] == [False, False]


def test_an_mjd_frame_round_trips_per_conversion(db_url, unique):
    store = ResultStore(get_engine(db_url))
    frame = pd.DataFrame({"uid": ["a", "b", "a", "b"], "conversion": ["normalize"] * 2 + ["softmax"] * 2,
                          "p_e": [0.1, 0.2, 0.3, 0.4], "p_n": [0.3, 0.3, 0.3, 0.3], "p_c": [0.6, 0.5, 0.4, 0.3]})
    for conversion, part in frame.groupby("conversion"):
        store.replace_distribution(part.drop(columns="conversion"), asset_key=f"m{unique}:{conversion}",
                                   partition_key="h|j", profile="demo", item_set="s", lineage={})
    assert store.conversions(f"m{unique}", "h|j", "demo") == ["normalize", "softmax"]
    assert store.distribution_frame(f"m{unique}", "h|j", "demo").equals(frame)
    assert store.distribution_frame(f"m{unique}", "other", "demo").empty


def test_conversions_are_replaced_together_or_not_at_all(db_url, unique):
    store = ResultStore(get_engine(db_url))
    frame = pd.DataFrame({"uid": ["a"], "p_e": [0.2], "p_n": [0.3], "p_c": [0.5]})
    kw = dict(partition_key="x", profile="demo", item_set="s", retire_prefix=f"m_{unique}:")
    store.replace_distributions({f"m_{unique}:normalize": frame, f"m_{unique}:softmax": frame}, **kw,
                                lineage={"run_id": "r1"})
    with pytest.raises(NonFiniteValueError):  # the second conversion is bad: neither is written
        store.replace_distributions({f"m_{unique}:normalize": frame.assign(p_e=0.1, p_c=0.6),
                                     f"m_{unique}:softmax": frame.assign(p_c=float("inf"))}, **kw,
                                    lineage={"run_id": "r2"})
    assert store.distribution_lineage(f"m_{unique}", "x", "demo").run_id == "r1"
    assert store.distribution(f"m_{unique}:normalize", "x", "demo").equals(frame)
    # a conversion refused this time stops being current: the current rows are exactly the new value
    store.replace_distributions({f"m_{unique}:softmax": frame}, **kw, lineage={"run_id": "r3"})
    assert store.conversions(f"m_{unique}", "x", "demo") == ["softmax"]
    store.replace_distribution(frame, asset_key=f"mX{unique}:other", partition_key="x", profile="demo",
                               item_set="s", lineage={})
    assert store.conversions(f"m_{unique}", "x", "demo") == ["softmax"]  # `_` is no LIKE wildcard here
