"""OpenAIBackend against a real HTTP server on 127.0.0.1 that injects 429s, 5xx, hangs and malformed JSON."""

from __future__ import annotations

import email.utils
import json
import logging
import math
import pickle
import time
import traceback

import httpx
import pytest

from hlv_assets.llm.base import GenerationParams
from hlv_assets.llm.cache import CachedLLM, PartialBatchError, Price
from hlv_assets.llm.callstore import MemoryCallStore
from hlv_assets.llm.openai_backend import (
    MissingAPIKey,
    OpenAIBackend,
    OpenAIError,
    parse_retry_after,
)
from hlv_assets_tests.llm.fake_openai_server import FakeOpenAIServer, answer_text

KEY = "sk-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
ENV = "HLV_TEST_OPENAI_KEY"


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv(ENV, KEY)
    with FakeOpenAIServer(api_key=KEY, latency_s=0.05, hang_s=5.0) as srv:
        yield srv


def make_backend(server: FakeOpenAIServer, **kw) -> OpenAIBackend:
    options = dict(
        base_url=server.url,
        api_key_env=ENV,
        max_concurrency=3,
        timeout_s=0.5,
        max_retries=3,
        backoff_base_s=0.05,
        backoff_max_s=0.5,
        price=Price(1.0, 2.0),
        seed=0,
    )
    options.update(kw)
    return OpenAIBackend("fake-gpt", **options)


def test_every_fault_is_retried_and_nothing_is_lost(server):
    prompts = [f"prompt {i}" for i in range(12)]
    faults = {
        "prompt 1": ["429:0.2"],
        "prompt 2": ["500", "503"],
        "prompt 3": ["hang"],
        "prompt 4": ["malformed"],
        "prompt 5": ["nochoices", "500"],
        "prompt 6": ["429:1"],
        "prompt 7": ["hang", "429:0.1", "502"],
    }
    server.faults = {p: list(f) for p, f in faults.items()}
    backend = make_backend(server)
    out = backend.generate(prompts, GenerationParams(max_new_tokens=32))

    assert [g.text for g in out] == [answer_text(p) for p in prompts]
    for p in prompts:
        assert server.attempts[p] == 1 + len(faults.get(p, [])), p
    assert max(server.attempts.values()) <= backend.max_retries + 1
    assert backend.stats.retries == sum(len(f) for f in faults.values()) == 11
    assert backend.stats.successes == len(prompts) and backend.stats.failures == 0
    # The concurrency bound holds on the server side, and was actually used.
    assert 2 <= server.max_in_progress <= 3
    assert backend.stats.max_in_flight <= 3
    # Retry-After is honoured: the retry of a 429 arrives no earlier than the header says.
    (t429, o429), (t_next, _) = server.times("prompt 6")
    assert o429 == "429:1" and t_next - t429 >= 1.0
    (t429, _), (t_next, _) = server.times("prompt 1")
    assert t_next - t429 >= 0.2
    # A hang is cut by the timeout, not waited out (hang_s is 5 s).
    (t_hang, o_hang), (t_retry, _) = server.times("prompt 3")
    assert o_hang == "hang" and 0.5 <= t_retry - t_hang < 2.0
    # The request carried the decoding parameters; usage and cost were recorded.
    body = next(b for b in server.bodies if b["messages"][0]["content"] == "prompt 0")
    assert body["max_tokens"] == 32 and body["temperature"] == 0.0 and body["model"] == "fake-gpt"
    g0 = out[0]
    assert g0.prompt_tokens == 2 and g0.completion_tokens == len(answer_text("prompt 0").split())
    assert math.isclose(g0.cost_usd, (2 * 1.0 + g0.completion_tokens * 2.0) / 1e6)
    assert math.isclose(backend.stats.cost_usd, sum(g.cost_usd for g in out))
    print("retries by reason:", backend.stats.retryable_errors, "max in progress:", server.max_in_progress)


def test_retry_limit_and_partial_results_survive_through_the_cache(server):
    prompts = [f"item {i}" for i in range(6)]
    server.faults = {"item 2": ["500"] * 10}
    backend = make_backend(server, max_retries=2, max_concurrency=2)
    store = MemoryCallStore()
    cached = CachedLLM(backend, store, chunk_size=6)
    with pytest.raises(PartialBatchError) as info:
        cached.generate(prompts)
    assert server.attempts["item 2"] == 3  # 1 + max_retries, never more
    assert "gave up after 3 attempts" in str(info.value)
    errors = info.value.errors
    assert 2 in errors and all(msg.startswith("not sent") for i, msg in errors.items() if i != 2)
    stored_now = len(store.records)
    assert stored_now == len(info.value.results) >= 1
    assert cached.counters.errors == len(prompts) - stored_now

    # The server recovers; the rerun asks only for what was not stored, and errors were never cached.
    server.faults.clear()
    before = dict(server.attempts)
    out = cached.generate(prompts)
    assert [g.text for g in out] == [answer_text(p) for p in prompts]
    asked_again = {p for p in prompts if server.attempts[p] > before.get(p, 0)}
    assert len(asked_again) == len(prompts) - stored_now and "item 2" in asked_again
    assert sum(g.cached for g in out) == stored_now


def test_client_errors_are_not_retried(server):
    server.faults = {"bad request": ["400"]}
    backend = make_backend(server)
    with pytest.raises(PartialBatchError, match="HTTP 400"):
        backend.generate(["bad request"])
    assert server.attempts["bad request"] == 1


def test_label_logits_top_k_and_missing_letter_is_none(server):
    server.top_logprobs = {
        "all three": [("B", -0.2), ("A", -1.9), ("C", -2.5), ("D", -4.0)],
        "C missing": [("A", -0.1), ("B", -2.6), (" C", -3.0), ("C", -6.0)],
    }
    backend = make_backend(server, top_logprobs=3)
    s_all, s_missing = backend.label_logits(["all three", "C missing"])
    assert s_all.kind == "logprobs" and s_all.scores == [-1.9, -0.2, -2.5]
    assert math.isclose(s_all.letter_mass, math.exp(-1.9) + math.exp(-0.2) + math.exp(-2.5))
    assert s_missing.scores == [-0.1, -2.6, None]  # " C" is not "C"; the real "C" is outside the top 3
    assert s_missing.letter_mass is None
    # the smallest log-probability of each returned top-3 list (what the `floor` rule fills in)
    assert s_all.top_k_floor == -2.5 and s_missing.top_k_floor == -3.0
    body = server.bodies[-1]
    assert body["logprobs"] is True and body["top_logprobs"] == 3 and body["max_tokens"] == 1

    # Through the cache: stored as LabelScores records, None kept as None.
    store = MemoryCallStore()
    cached = CachedLLM(backend, store)
    first = cached.label_logits(["C missing"])
    again = cached.label_logits(["C missing"])
    assert first[0].scores == again[0].scores == [-0.1, -2.6, None] and again[0].cached
    assert again[0].top_k_floor == -3.0
    assert server.attempts["C missing"] == 2  # one direct, one through the cache, none for the hit


def test_api_key_never_appears_in_logs_errors_reprs_or_records(server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)  # httpx and httpcore included
    server.faults = {"q1": ["429:0.1", "500"], "q2": ["malformed"], "q3": ["hang"], "q4": ["500"] * 9}
    backend = make_backend(server, max_retries=2)
    store = MemoryCallStore()
    cached = CachedLLM(backend, store, chunk_size=2)
    texts: list[str] = []

    cached.generate(["q0", "q1"])
    cached.label_logits(["q0", "q2"])
    cached.generate(["q3"])
    with pytest.raises(PartialBatchError) as failed:
        cached.generate(["q4"])
    texts += [str(failed.value), repr(failed.value), "".join(traceback.format_exception(failed.value))]

    # A wrong key that the server echoes back in its 401 body.
    wrong = "sk-wrong-0123456789abcdef0123456789abcdef"
    monkeypatch.setenv("HLV_TEST_WRONG_KEY", wrong)
    bad = make_backend(server, api_key_env="HLV_TEST_WRONG_KEY")
    with pytest.raises(PartialBatchError) as unauthorized:
        bad.generate(["q0"])
    assert "HTTP 401" in str(unauthorized.value) and "[REDACTED]" in str(unauthorized.value)
    texts += [str(unauthorized.value), "".join(traceback.format_exception(unauthorized.value))]
    texts += list(unauthorized.value.errors.values())

    # The keys were really sent.
    assert f"Bearer {KEY}" in server.auth_headers and f"Bearer {wrong}" in server.auth_headers
    texts += [
        caplog.text,
        json.dumps(store.records),
        repr(backend),
        str(backend.__dict__),
        repr(backend.identity()),
        json.dumps(backend.identity().as_dict()),
        json.dumps(backend.stats.as_dict()),
        repr(cached.counters),
        repr(bad),
        str(bad.__dict__),
    ]
    texts.append(str(pickle.dumps(backend)))  # the serialised state holds no key (it is read from the env)
    blob = "\n".join(texts)
    assert "retrying" in caplog.text  # the retries were logged
    for secret in (KEY, wrong, KEY[3:], wrong[3:]):
        assert secret not in blob


def test_missing_key_names_the_variable_not_a_value(server, monkeypatch):
    monkeypatch.delenv("HLV_TEST_UNSET_KEY", raising=False)
    backend = make_backend(server, api_key_env="HLV_TEST_UNSET_KEY")
    assert backend.identity().model_id == "fake-gpt"  # identity and plan need no key
    with pytest.raises(MissingAPIKey, match="HLV_TEST_UNSET_KEY"):
        backend.generate(["q"])
    with pytest.raises(MissingAPIKey):
        backend.label_logits(["q"])
    assert server.attempts["q"] == 0  # nothing was sent


@pytest.mark.parametrize("keyless", [None, ""])  # "" is what `--option api_key_env=` registers
def test_no_key_and_no_authorization_header_for_local_servers(keyless, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-be-sent")  # a key in the usual variable is not picked up
    monkeypatch.setenv(ENV, KEY)
    with FakeOpenAIServer(api_key=None) as local:  # answers 401 to any request with an Authorization header
        backend = make_backend(local, api_key_env=keyless)
        assert backend.generate(["q"])[0].text == answer_text("q")
        assert backend.label_logits(["q"])[0].scores == [-0.4, -1.3, -2.2]
        assert local.auth_headers == [None, None]  # the header is absent, not empty
        keyed = make_backend(local)  # the server does reject a key: the test above can fail
        with pytest.raises(PartialBatchError, match="HTTP 401"):
            keyed.generate(["q"])


def test_parse_retry_after_forms():
    now = time.time()
    assert parse_retry_after(httpx.Headers({"Retry-After": "3"})) == 3.0
    assert parse_retry_after(httpx.Headers({"Retry-After": "0.25"})) == 0.25
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "1500", "Retry-After": "9"})) == 1.5
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= parse_retry_after(httpx.Headers({"Retry-After": date}), now=now) <= 31
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Headers({})) is None


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError):
        OpenAIBackend("m", top_logprobs=21)
    with pytest.raises(ValueError):
        OpenAIBackend("m", max_concurrency=0)
    assert issubclass(MissingAPIKey, OpenAIError)
    assert OpenAIBackend("gpt-4o").price == Price(2.50, 10.00)
    unknown = OpenAIBackend("some-local-model", api_key_env=None)
    assert unknown.price is None
    with pytest.raises(ValueError, match="needs a price"):
        CachedLLM(unknown, MemoryCallStore(), budget_usd=5.0)
    CachedLLM(OpenAIBackend("some-local-model", price=Price()), MemoryCallStore(), budget_usd=5.0)
