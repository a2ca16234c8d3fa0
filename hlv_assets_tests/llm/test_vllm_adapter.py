"""VLLMBackend against a fake engine with vLLM's interface (vLLM itself cannot be installed in CI)."""

from __future__ import annotations

import math
import subprocess
import sys
import types
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from hlv_assets.llm.base import GenerationParams, LLMBackend
from hlv_assets.llm.cache import CachedLLM
from hlv_assets.llm.callstore import MemoryCallStore
from hlv_assets.llm.vllm_backend import LetterTokenError, VLLMBackend, letter_token_ids

BOS = 1


class FakeTokenizer:
    """One token per character (id = code point); BOS = 1; a tiny chat template."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([BOS] if add_special_tokens else []) + [ord(c) for c in text]

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        assert tokenize is False
        text = "".join(f"\x02{m['role']}\n{m['content']}\x03" for m in messages)
        return text + ("\x02assistant\n" if add_generation_prompt else "")


@dataclass
class FakeLogprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class NewSamplingParams:
    """vLLM >= 0.20-dev: has logprob_token_ids."""

    max_tokens: int | None = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    logprobs: int | None = None
    logprob_token_ids: list[int] | None = None


@dataclass
class OldSamplingParams:
    """Older vLLM: no logprob_token_ids (an unknown keyword raises TypeError, as msgspec does)."""

    max_tokens: int | None = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    logprobs: int | None = None


def fake_distribution(prompt_ids: list[int]) -> dict[int, float]:
    """Log-probabilities over a small vocabulary, depending on the prompt; 'C' is rare for prompts with '!'."""
    rare_c = ord("!") in prompt_ids
    logits = {ord("A"): 2.0, ord("B"): 1.0, ord("C"): -9.0 if rare_c else 0.5, ord("T"): 1.5, ord(" "): 0.0}
    for t in range(ord("a"), ord("a") + 20):
        logits[t] = -1.0
    z = math.log(sum(math.exp(v) for v in logits.values()))
    return {t: v - z for t, v in logits.items()}


@dataclass
class FakeEngine:
    """vllm.LLM's surface: get_tokenizer() and generate(prompts, sampling_params, use_tqdm)."""

    calls: list = field(default_factory=list)

    def get_tokenizer(self) -> FakeTokenizer:
        return FakeTokenizer()

    def generate(self, prompts, sampling_params=None, use_tqdm=True):
        self.calls.append((prompts, sampling_params))
        outs = []
        for p in prompts:
            ids = p["prompt_token_ids"]
            dist = fake_distribution(ids)
            sampled = max(dist, key=dist.get)
            logprobs = None
            wanted = getattr(sampling_params, "logprob_token_ids", None)
            if wanted is not None:
                logprobs = [{t: FakeLogprob(dist[t]) for t in {*wanted, sampled}}]
            elif sampling_params.logprobs is not None:
                top = sorted(dist, key=dist.get, reverse=True)[: sampling_params.logprobs]
                logprobs = [{t: FakeLogprob(dist[t], rank=r + 1) for r, t in enumerate({*top, sampled})}]
            n = sampling_params.max_tokens or 16
            text = f"gen{len(ids)}-" + "x" * (n - 1)
            completion = SimpleNamespace(text=text[: 4 + n], token_ids=list(range(n)), logprobs=logprobs)
            outs.append(SimpleNamespace(prompt_token_ids=ids, outputs=[completion]))
        return outs


def make(sp_cls=NewSamplingParams, **kw) -> tuple[VLLMBackend, FakeEngine]:
    engine = FakeEngine()
    return VLLMBackend(
        "org/model", revision="abc123", dtype="bfloat16", engine=engine, sampling_params_cls=sp_cls, **kw
    ), engine


def test_generate_applies_chat_template_once_and_maps_params():
    backend, engine = make()
    assert isinstance(backend, LLMBackend)
    out = backend.generate(
        ["hello", "world!"], GenerationParams(max_new_tokens=7, temperature=0.0, top_p=0.9, seed=3)
    )
    prompts, sp = engine.calls[0]
    assert (sp.max_tokens, sp.temperature, sp.top_p, sp.seed) == (7, 0.0, 0.9, 3)
    expected = FakeTokenizer().encode("\x02user\nhello\x03\x02assistant\n", add_special_tokens=False)
    # The template's text, tokenized without special tokens: no second BOS.
    assert prompts[0]["prompt_token_ids"] == expected and expected[0] != BOS
    assert [g.prompt_tokens for g in out] == [len(expected), len(expected) + 1]
    assert [g.completion_tokens for g in out] == [7, 7]
    assert out[0].text.startswith(f"gen{len(expected)}-")
    assert len(engine.calls) == 1  # one batched engine call


def test_raw_prompts_for_base_models():
    backend, engine = make(chat_template=False)
    backend.generate(["hi"], GenerationParams(max_new_tokens=2))
    assert engine.calls[0][0][0]["prompt_token_ids"] == [BOS, ord("h"), ord("i")]
    assert backend.identity().extra["chat_template"] is False


def test_label_logits_with_logprob_token_ids_is_exact():
    backend, engine = make()
    scores = backend.label_logits(["plain", "rare C!"], ("A", "B", "C"))
    sp = engine.calls[0][1]
    assert sp.max_tokens == 1 and sp.temperature == 0.0 and sp.logprob_token_ids == [65, 66, 67]
    for s, prompt in zip(scores, ["plain", "rare C!"], strict=True):
        ids = engine.calls[0][0][["plain", "rare C!"].index(prompt)]["prompt_token_ids"]
        dist = fake_distribution(ids)
        assert s.kind == "logprobs" and s.letters == ("A", "B", "C") and s.token_ids == [65, 66, 67]
        assert s.scores == pytest.approx([dist[65], dist[66], dist[67]])
        assert s.letter_mass == pytest.approx(sum(math.exp(dist[t]) for t in (65, 66, 67)))
        assert s.prompt_tokens == len(ids)
    assert scores[1].scores[2] < -9  # the rare letter is still reported exactly


def test_label_logits_fallback_top_k_records_missing_letter_as_none():
    backend, engine = make(OldSamplingParams, label_top_k=4)
    plain, rare = backend.label_logits(["plain", "rare C!"])
    assert engine.calls[0][1].logprobs == 4
    assert None not in plain.scores and plain.letter_mass is not None
    assert rare.scores[2] is None and rare.scores[0] is not None and rare.letter_mass is None


def test_raw_logits_mode_is_recorded_as_logits():
    backend, _ = make(logprobs_mode="raw_logits")
    (s,) = backend.label_logits(["plain"])
    assert s.kind == "logits" and s.letter_mass is None
    assert backend.identity().extra["logprobs_mode"] == "raw_logits"
    assert backend.engine_args()["logprobs_mode"] == "raw_logits"


def test_letter_ids_must_be_single_tokens():
    tok = FakeTokenizer()
    assert letter_token_ids(tok, ("A", "B", "C")) == [65, 66, 67]
    with pytest.raises(LetterTokenError, match="'AB' is 2 tokens"):
        letter_token_ids(tok, ("AB", "C"))
    with pytest.raises(LetterTokenError, match="share"):
        letter_token_ids(tok, ("A", "A"))


def test_results_cache_through_cached_llm():
    backend, engine = make()
    store = MemoryCallStore()
    first = CachedLLM(backend, store).label_logits(["p1", "p2"])
    second = CachedLLM(backend, store).label_logits(["p1", "p2"])
    assert len(engine.calls) == 1 and all(s.cached for s in second)
    assert [s.scores for s in first] == [s.scores for s in second]


def test_engine_is_built_lazily_with_prefix_caching_and_tensor_parallelism(monkeypatch):
    built = {}

    class FakeLLM(FakeEngine):
        def __init__(self, **kwargs):
            super().__init__()
            built.update(kwargs)

    fake_vllm = types.ModuleType("vllm")
    fake_vllm.LLM = FakeLLM
    fake_vllm.SamplingParams = NewSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm)

    backend = VLLMBackend(
        "meta-llama/Meta-Llama-3-70B-Instruct", dtype="bfloat16", tensor_parallel_size=2, revision="r"
    )
    assert built == {}  # nothing built at construction
    backend.generate(["x"], GenerationParams(max_new_tokens=3))
    assert built["enable_prefix_caching"] is True and built["tensor_parallel_size"] == 2
    assert (built["model"], built["dtype"], built["revision"]) == (
        "meta-llama/Meta-Llama-3-70B-Instruct",
        "bfloat16",
        "r",
    )
    assert "logprobs_mode" not in built  # the default is not passed (older vLLM lacks the argument)
    assert backend.identity().backend == "vllm" and backend.identity().dtype == "bfloat16"


def test_missing_vllm_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails
    with pytest.raises(ImportError, match="needs vLLM"):
        VLLMBackend("m").generate(["x"])


def test_importing_the_adapter_imports_neither_vllm_nor_torch():
    code = (
        "import sys, hlv_assets.llm.vllm_backend, hlv_assets.llm.registry; "
        "bad = [m for m in ('vllm', 'torch', 'dagster') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
