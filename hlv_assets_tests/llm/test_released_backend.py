"""The released backend replays the published generations, prompt by prompt."""

from __future__ import annotations

import pytest

from hlv_assets.lib.prompts import generation_prompt
from hlv_assets.lib.released import RELEASED_MODELS, raw_output_path, read_items
from hlv_assets.llm.base import GENERATE, CapabilityError, GenerationParams, LLMBackend
from hlv_assets.llm.cache import CachedLLM
from hlv_assets.llm.callstore import MemoryCallStore
from hlv_assets.llm.released_backend import MJD_ESTIMATOR_COMMIT, ReleasedBackend, UnknownPromptError


@pytest.fixture(scope="module")
def items(data_dir):
    return read_items(data_dir)


def prompt_for(items, i: int, label: str) -> str:
    return generation_prompt(items[i]["premise"], items[i]["hypothesis"], label)


def test_llama3_item0_label_e_is_the_published_answer(data_dir, items):
    backend = ReleasedBackend("llama3", data_dir=data_dir)
    (gen,) = backend.generate([prompt_for(items, 0, "E")], GenerationParams())
    raw = raw_output_path(data_dir, "llama3", 0, "e").read_text(encoding="utf-8")
    assert gen.text == raw.split("<|start_header_id|>assistant<|end_header_id|>", 1)[1].removesuffix(
        "<|eot_id|>"
    )
    assert gen.text.strip().startswith("Here are the possible explanations why the statement is NOT true")
    assert '* There is no mention of "small lepers" in the context, only "ladies".' in gen.text
    assert "<|" not in gen.text
    assert (gen.prompt_tokens, gen.completion_tokens, gen.cost_usd) == (0, 0, 0.0)


@pytest.mark.parametrize("slug", sorted(RELEASED_MODELS))
def test_each_model_answers_every_prompt_in_order(data_dir, items, slug):
    backend = ReleasedBackend(slug, data_dir=data_dir)
    assert isinstance(backend, LLMBackend) and backend.capabilities == frozenset({GENERATE})
    ident = backend.identity()
    assert (ident.backend, ident.model_id, ident.revision) == (
        "released",
        RELEASED_MODELS[slug],
        MJD_ESTIMATOR_COMMIT,
    )
    picks = [(5, "C"), (0, "N"), (340, "E"), (17, "e"), (5, "contradiction")]
    out = backend.generate([prompt_for(items, i, label) for i, label in picks])
    for (i, label), gen in zip(picks, out, strict=True):
        raw = raw_output_path(data_dir, slug, i, label[0].lower()).read_text(encoding="utf-8")
        assert gen.text and gen.text in raw  # the answer part of the published file
        assert backend.locate(prompt_for(items, i, label)) == (i, label[0].lower())
    assert out[0].text == out[4].text  # "C" and "contradiction" are the same prompt
    assert len(backend._load()) == 341 * 3


def test_gpt4o_and_mixtral_known_openings(data_dir, items):
    p = prompt_for(items, 0, "E")
    gpt = ReleasedBackend("gpt4o", data_dir=data_dir).generate([p])[0].text
    mix = ReleasedBackend("mixtral", data_dir=data_dir).generate([p])[0].text
    assert gpt.startswith('1. The term "ladies" in the context could be metaphorically')
    assert mix.lstrip().startswith("1. The building is airy") and not mix.endswith("</s>")


def test_unknown_prompt_is_a_clear_error(data_dir, items):
    backend = ReleasedBackend("mixtral", data_dir=data_dir)
    with pytest.raises(UnknownPromptError, match="no published generation for this prompt"):
        backend.generate([prompt_for(items, 0, "E") + " "])
    with pytest.raises(UnknownPromptError):
        backend.generate(["Please determine whether the following statement is true"])


def test_label_logits_is_not_a_capability(data_dir):
    with pytest.raises(CapabilityError, match="no label scores"):
        ReleasedBackend("gpt4o", data_dir=data_dir).label_logits(["x"])


def test_unknown_slug():
    with pytest.raises(ValueError, match="no published generations"):
        ReleasedBackend("claude")


def test_replays_cache_like_any_backend(data_dir, items):
    store = MemoryCallStore()
    ps = [prompt_for(items, i, "N") for i in range(3)]
    first = CachedLLM(ReleasedBackend("llama3", data_dir=data_dir), store).generate(ps)
    second = CachedLLM(ReleasedBackend("llama3", data_dir=data_dir), store).generate(ps)
    assert [g.text for g in first] == [g.text for g in second] and all(g.cached for g in second)
