"""CachedLLM: reruns cost nothing, errors are not cached, order holds, the budget stops a run before it is
exceeded, the dry run counts, and a run SIGKILLed halfway resumes without asking for anything saved."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hlv_assets.llm.base import GENERATE, LABEL_LOGITS, GenerationParams, LLMIdentity, call_key
from hlv_assets.llm.cache import BudgetExceeded, CachedLLM, PartialBatchError, Price
from hlv_assets.llm.callstore import MemoryCallStore
from hlv_assets_tests.llm.fakes import (
    CountingBackend,
    FakeBackendError,
    fake_scores,
    fake_text,
    read_call_log,
)

PARAMS = GenerationParams(max_new_tokens=64)


class SQLiteCallStore:
    """A file-backed CallStore, durable on put (autocommit, synchronous=FULL): a SIGKILL loses nothing put."""

    def __init__(self, path: str | Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, record TEXT NOT NULL)")

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        out = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            for key, record in self.conn.execute(
                f"SELECT key, record FROM calls WHERE key IN ({marks})", part
            ):
                out[key] = json.loads(record)
        return out

    def put(self, key: str, record: dict) -> None:
        self.conn.execute("INSERT OR REPLACE INTO calls VALUES (?, ?)", (key, json.dumps(record)))

    def keys(self) -> set[str]:
        return {k for (k,) in self.conn.execute("SELECT key FROM calls")}


def prompts(n: int) -> list[str]:
    return [f"Context: premise {i} \nStatement: hypothesis {i} \nAnswer:" for i in range(n)]


def test_rerun_makes_zero_calls_and_results_are_identical():
    backend, store = CountingBackend(), MemoryCallStore()
    ps = prompts(10)
    first = CachedLLM(backend, store, chunk_size=3).generate(ps, PARAMS)
    assert backend.count(GENERATE) == 10 and backend.batches == [3, 3, 3, 1]
    assert not any(g.cached for g in first)

    again = CachedLLM(backend, store)
    second = again.generate(ps, PARAMS)
    assert backend.count() == 10  # nothing new
    assert all(g.cached for g in second)
    assert [g.text for g in second] == [g.text for g in first] == [fake_text(p, PARAMS) for p in ps]
    assert [g.completion_tokens for g in second] == [g.completion_tokens for g in first]
    c = again.counters
    assert (c.calls, c.hits, c.misses, c.batches, c.prompt_tokens, c.cost_usd) == (10, 10, 0, 0, 0, 0.0)


def test_key_covers_params_and_identity():
    store = MemoryCallStore()
    a = CountingBackend(revision="r1")
    CachedLLM(a, store).generate(["p"], PARAMS)
    CachedLLM(a, store).generate(["p"], GenerationParams(max_new_tokens=64, temperature=0.7, seed=1))
    assert a.count() == 2  # other decoding parameters: another call
    b = CountingBackend(revision="r2")
    CachedLLM(b, store).generate(["p"], PARAMS)
    c = CountingBackend(revision="r1", dtype="bfloat16")
    CachedLLM(c, store).generate(["p"], PARAMS)
    assert b.count() == 1 and c.count() == 1  # another revision or dtype: another call
    CachedLLM(a, store).label_logits(["p"])
    assert a.count(LABEL_LOGITS) == 1  # another operation: another call
    assert len(store.records) == 5


def test_order_is_preserved_with_hits_misses_and_duplicates():
    backend, store = CountingBackend(), MemoryCallStore()
    ps = prompts(8)
    CachedLLM(backend, store).generate(ps[::2], PARAMS)  # 0, 2, 4, 6 stored
    mixed = [ps[5], ps[0], ps[7], ps[5], ps[2], ps[1], ps[6], ps[3], ps[4]]
    cached = CachedLLM(backend, store, chunk_size=2)
    out = cached.generate(mixed, PARAMS)
    assert [g.text for g in out] == [fake_text(p, PARAMS) for p in mixed]
    assert [g.cached for g in out] == [False, True, False, False, True, False, True, False, True]
    assert [p for _, p in backend.calls[4:]] == [ps[5], ps[7], ps[1], ps[3]]  # each miss once, in order
    c = cached.counters
    assert (c.calls, c.hits, c.misses, c.duplicates) == (9, 4, 4, 1)
    out[0].text = "mutated"
    assert out[3].text == fake_text(ps[5], PARAMS)  # duplicates are independent copies


def test_label_logits_are_cached_as_label_scores():
    backend, store = CountingBackend(), MemoryCallStore()
    ps = prompts(3)
    first = CachedLLM(backend, store).label_logits(ps, ("A", "B", "C"))
    second = CachedLLM(backend, store).label_logits(ps, ("A", "B", "C"))
    assert backend.count(LABEL_LOGITS) == 3
    assert (
        [s.scores for s in second]
        == [s.scores for s in first]
        == [fake_scores(p, ("A", "B", "C")) for p in ps]
    )
    assert all(s.cached and s.kind == "logits" and s.letters == ("A", "B", "C") for s in second)
    assert second[0].token_ids == [100, 101, 102]
    record = next(iter(store.records.values()))
    assert (
        record["operation"] == LABEL_LOGITS
        and record["letters"] == ["A", "B", "C"]
        and "cached" not in record
    )
    assert (record["backend"], record["model_id"]) == ("fake", "fake-model")  # columns of the SQL store
    CachedLLM(backend, store).label_logits(ps[:1], ("C", "B", "A"))
    assert backend.count(LABEL_LOGITS) == 4  # other letters: another key


def test_errors_are_never_cached():
    ps = prompts(6)
    backend = CountingBackend(fail_prompts={ps[4]: 1})  # fails once, then succeeds
    store = MemoryCallStore()
    cached = CachedLLM(backend, store, chunk_size=2)
    with pytest.raises(FakeBackendError):
        cached.generate(ps, PARAMS)
    # chunks [0,1] [2,3] stored; [4,5] failed as a whole and is not stored
    assert len(store.records) == 4 and cached.counters.errors == 2
    out = cached.generate(ps, PARAMS)
    assert [g.text for g in out] == [fake_text(p, PARAMS) for p in ps]
    assert [p for _, p in backend.calls[6:]] == [ps[4], ps[5]]  # only the failed chunk is asked again
    assert len(store.records) == 6


def test_partial_batch_error_keeps_the_successes():
    ps = prompts(4)
    ident = CountingBackend().identity()

    class HalfFailing(CountingBackend):
        def generate(self, prompts_, params):
            out = super().generate(prompts_, params)
            raise PartialBatchError("one failed", {0: out[0], 2: out[2]}, {1: "boom", 3: "boom"})

    store = MemoryCallStore()
    with pytest.raises(PartialBatchError):
        CachedLLM(HalfFailing(), store, chunk_size=4).generate(ps, PARAMS)
    saved = {call_key(ident, GENERATE, p, PARAMS.as_dict()) for p in (ps[0], ps[2])}
    assert set(store.records) == saved


def test_budget_stops_before_it_is_exceeded():
    price = Price(input_per_1m=1_000_000.0, output_per_1m=0.0)  # $1 per prompt token

    def counter(prompt: str) -> int:  # counts tokens as the fake does: estimates are exact
        return len(prompt.split())

    ps = [" ".join([f"w{i}"] * 10) for i in range(6)]  # 10 tokens each: $10 per call
    backend, store = CountingBackend(price=price), MemoryCallStore()

    capped = CachedLLM(backend, store, budget_usd=35.0, chunk_size=2, token_counter=counter)
    with pytest.raises(BudgetExceeded, match=r"budget of \$35\.0000"):
        capped.generate(ps, PARAMS)  # 6 misses x $10 = $60 > $35: nothing is sent
    assert backend.count() == 0

    capped.generate(ps[:3], PARAMS)  # $30 estimated, fits
    assert backend.count() == 3 and capped.spent_usd == pytest.approx(30.0)
    with pytest.raises(BudgetExceeded, match="spent \\$30"):
        capped.generate(ps, PARAMS)  # 3 stored (free) + 3 misses estimated $30 on top of the $30 spent
    assert backend.count() == 3
    assert capped.spent_usd <= 35.0
    plan = capped.plan(ps, PARAMS)
    assert (plan.hits, plan.misses, plan.est_cost_usd) == (3, 3, 30.0)

    # spent_usd carries earlier spending into a new run
    later = CachedLLM(backend, store, budget_usd=35.0, spent_usd=30.0, token_counter=counter)
    with pytest.raises(BudgetExceeded):
        later.generate(ps[3:4], PARAMS)


def test_budget_checked_per_chunk_against_actual_spending():
    # The estimate says $1 per call but the backend really charges $10: after the first chunk ($20 spent) the
    # estimates are scaled by the observed ratio 10, so the second chunk ($20 more) is refused.
    class Expensive(CountingBackend):
        def generate(self, prompts_, params):
            out = super().generate(prompts_, params)
            for g in out:
                g.cost_usd = 10.0
            return out

    backend = Expensive()
    cached = CachedLLM(
        backend,
        MemoryCallStore(),
        budget_usd=25.0,
        price=Price(1_000_000.0, 0.0),
        chunk_size=2,
        token_counter=lambda p: 1,
    )
    with pytest.raises(BudgetExceeded, match="chunk starting at miss 2"):
        cached.generate(prompts(6), PARAMS)
    assert backend.count() == 2 and cached.spent_usd == 20.0 <= 25.0
    assert cached.estimate_correction == pytest.approx(10.0)


def test_budget_needs_a_price():
    with pytest.raises(ValueError, match="needs a price"):
        CachedLLM(CountingBackend(), MemoryCallStore(), budget_usd=1.0)
    for local in ("transformers", "vllm", "released"):  # local backends are free unless priced
        capped = CachedLLM(CountingBackend(backend=local), MemoryCallStore(), budget_usd=0.0)
        assert capped.generate(["p"], PARAMS)[0].text == fake_text("p", PARAMS)
    CachedLLM(CountingBackend(price=Price()), MemoryCallStore(), budget_usd=0.0).generate(["free"], PARAMS)


def test_plan_counts_without_calling():
    backend, store = CountingBackend(price=Price(2.0, 4.0)), MemoryCallStore()
    ps = prompts(5)
    cached = CachedLLM(backend, store)
    cached.generate(ps[:2], PARAMS)
    n = backend.count()
    plan = cached.plan(ps + [ps[4]], PARAMS)
    assert backend.count() == n
    assert (plan.prompts, plan.unique, plan.hits, plan.misses) == (6, 5, 2, 3)
    est_in = sum(-(-len(p) // 4) for p in ps[2:])
    assert (plan.est_prompt_tokens, plan.est_completion_tokens) == (est_in, 3 * 64)
    assert plan.est_cost_usd == pytest.approx((est_in * 2.0 + 192 * 4.0) / 1e6)
    lplan = cached.plan(ps, operation=LABEL_LOGITS)
    assert (lplan.misses, lplan.est_completion_tokens) == (5, 5)


def test_unreadable_records_are_called_again():
    backend, store = CountingBackend(), MemoryCallStore()
    key = call_key(backend.identity(), GENERATE, "p", PARAMS.as_dict())
    store.put(key, {"operation": GENERATE, "text": None})
    out = CachedLLM(backend, store).generate(["p"], PARAMS)
    assert backend.count() == 1 and out[0].text == fake_text("p", PARAMS)


def test_cached_llm_is_a_backend():
    from hlv_assets.llm.base import LLMBackend

    cached = CachedLLM(CountingBackend(), MemoryCallStore())
    assert isinstance(cached, LLMBackend)
    assert cached.identity() == LLMIdentity(
        backend="fake", model_id="fake-model", revision="r1", dtype="float32"
    )


# -- SIGKILL halfway, then resume ---------------------------------------------------------------------------------

RUNNER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {root!r})
    from hlv_assets.llm.base import GenerationParams
    from hlv_assets.llm.cache import CachedLLM
    from hlv_assets_tests.llm.fakes import CountingBackend
    from hlv_assets_tests.llm.test_cache import SQLiteCallStore, prompts

    db, log, out, n, delay = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    backend = CountingBackend(call_log=log, delay_s=delay)
    cached = CachedLLM(backend, SQLiteCallStore(db), chunk_size=3)
    ps = prompts(n)
    results = []
    for start in range(0, n, 6):  # like partitions: one request per slice
        results += [g.text for g in cached.generate(ps[start:start + 6], GenerationParams(max_new_tokens=64))]
        print("done", start + 6, flush=True)
    with open(out, "w") as fh:
        json.dump(results, fh)
    """
)


def _run(tmp_path: Path, name: str, n: int, delay: float) -> subprocess.Popen:
    script = tmp_path / "runner.py"
    script.write_text(RUNNER.format(root=str(Path(__file__).resolve().parents[2])))
    args = [sys.executable, str(script), str(tmp_path / f"{name}.db"), str(tmp_path / f"{name}.log")]
    args += [str(tmp_path / f"{name}.json"), str(n), str(delay)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_halfway_then_resume(tmp_path):
    n = 36
    # 1. Interrupted run: killed once about half the calls are stored.
    proc = _run(tmp_path, "resumed", n, delay=0.02)
    store = SQLiteCallStore(tmp_path / "resumed.db")
    deadline = time.monotonic() + 60
    while len(store.keys()) < n // 2:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the runner made no progress"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "resumed.json").exists()

    ident = CountingBackend().identity()
    params = GenerationParams(max_new_tokens=64).as_dict()
    key_of = {call_key(ident, GENERATE, p, params): p for p in prompts(n)}
    saved = {key_of[k] for k in store.keys()}
    first_calls = [e["prompt"] for e in read_call_log(tmp_path / "resumed.log")]
    assert n // 2 <= len(saved) < n
    assert saved <= set(first_calls)
    in_flight_lost = set(first_calls) - saved
    assert len(in_flight_lost) <= 3  # at most the chunk in flight

    # 2. Resume: nothing already saved is asked for again.
    (tmp_path / "resumed.log").rename(tmp_path / "resumed-first.log")
    proc = _run(tmp_path, "resumed", n, delay=0.0)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    second_calls = [e["prompt"] for e in read_call_log(tmp_path / "resumed.log")]
    assert not saved & set(second_calls)
    assert sorted(second_calls) == sorted(set(prompts(n)) - saved)  # each remaining prompt exactly once

    # 3. Same final result as an uninterrupted run.
    proc = _run(tmp_path, "straight", n, delay=0.0)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    straight = json.loads((tmp_path / "straight.json").read_text())
    assert resumed == straight and len(straight) == n
    assert len(read_call_log(tmp_path / "straight.log")) == n
    lost, asked = len(in_flight_lost), len(second_calls)
    print(f"saved before kill: {len(saved)}/{n}; lost in flight: {lost}; asked on resume: {asked}")
