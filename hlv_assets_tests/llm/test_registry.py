"""LLM specs: the YAML defaults, slug rules, round trips, validation and building backends."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from hlv_assets.llm.base import GENERATE, LABEL_LOGITS, GenerationParams, LLMBackend
from hlv_assets.llm.cache import Price
from hlv_assets.llm.openai_backend import OpenAIBackend
from hlv_assets.llm.registry import (
    LLMSpec,
    SpecError,
    build_backend,
    load_default_specs,
    load_specs,
    validate_slug,
)
from hlv_assets.llm.released_backend import MJD_ESTIMATOR_COMMIT, ReleasedBackend
from hlv_assets.llm.vllm_backend import VLLMBackend


def test_default_specs():
    specs = {s.slug: s for s in load_default_specs()}
    assert set(specs) == {"llama3", "gpt4o", "mixtral", "smollm2-135m"}
    for slug, folder in (("llama3", "Llama3"), ("gpt4o", "GPT4o"), ("mixtral", "Mixtral")):
        s = specs[slug]
        assert (s.backend, s.model, s.revision, s.capabilities) == (
            "released",
            folder,
            MJD_ESTIMATOR_COMMIT,
            (GENERATE,),
        )
    small = specs["smollm2-135m"]
    assert small.backend == "transformers" and small.model == "embedded:smollm2-135m"
    assert small.capabilities == (GENERATE, LABEL_LOGITS) and small.active
    assert small.generation_params() == GenerationParams(max_new_tokens=256, temperature=0.0)


@pytest.mark.parametrize("slug", ["llama3", "smollm2-135m", "gpt-4o.2024", "a", "7b"])
def test_good_slugs(slug):
    assert validate_slug(slug) == slug


@pytest.mark.parametrize(
    "slug", ["", "Llama3", "a|b", "a,b", "a[b]", "a b", "-a", "a-", "a_b", "a/b", ".a", "x" * 65, None, 3]
)
def test_bad_slugs(slug):
    with pytest.raises(SpecError, match="invalid LLM slug"):
        validate_slug(slug)
    with pytest.raises(SpecError):
        LLMSpec(slug=slug, backend="vllm", model="m")


def test_round_trip_through_dict_and_json():
    spec = LLMSpec(
        slug="gpt-4o-api",
        backend="openai",
        model="gpt-4o-2024-08-06",
        params={"max_new_tokens": 300, "temperature": 0.0},
        options={
            "base_url": "https://api.openai.com/v1",
            "api_key_env": "OPENAI_API_KEY",
            "price_input_per_1m": 2.5,
        },
        active=False,
    )
    data = spec.to_dict()
    assert LLMSpec.from_dict(data) == spec
    import json

    assert LLMSpec.from_dict(json.loads(json.dumps(data))) == spec
    assert data["capabilities"] == [GENERATE, LABEL_LOGITS] and data["active"] is False
    for default in load_default_specs():
        assert LLMSpec.from_dict(default.to_dict()) == default


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"backend": "llamacpp", "model": "m"}, "backend"),
        ({"backend": "vllm"}, "model"),
        ({"backend": "vllm", "model": "m", "capabilities": ["judge"]}, "capabilities"),
        ({"backend": "released", "capabilities": ["generate", "label_logits"]}, "no label_logits"),
        ({"backend": "vllm", "model": "m", "params": {"max_tokens": 5}}, "decoding params"),
        ({"backend": "openai", "model": "m", "options": {"api_key": "sk-x"}}, "secrets"),
        ({"backend": "openai", "model": "m", "options": {"base_ulr": "x"}}, "unknown options"),
        ({"backend": "vllm", "model": "m", "options": {"base_url": "x"}}, "unknown options"),
        ({"backend": "transformers", "model": "embedded:gpt5"}, "embedded"),
        ({"backend": "released", "options": {"released_as": "claude"}}, "published"),
        ({"backend": "released", "model": "GPT4o"}, "does not match"),
        ({"backend": "vllm", "model": "m", "active": "yes"}, "active"),
        ({"backend": "openai", "model": "m", "options": {"base_url": "http://user:sk-x@host/v1"}}, "api_key_env"),
    ],
)
def test_invalid_specs_are_refused(bad, match):
    with pytest.raises(SpecError, match=match):
        LLMSpec(slug="llama3", **bad)


def test_from_dict_refuses_unknown_fields():
    with pytest.raises(SpecError, match="unknown fields"):
        LLMSpec.from_dict({"slug": "x", "backend": "vllm", "model": "m", "temprature": 0.5})


def test_yaml_duplicates_are_refused(tmp_path):
    path = tmp_path / "llms.yaml"
    path.write_text(yaml.safe_dump({"llms": [{"slug": "a", "backend": "vllm", "model": "m"}] * 2}))
    with pytest.raises(SpecError, match="twice"):
        load_specs(path)
    path.write_text("[]")
    with pytest.raises(SpecError, match="llms"):
        load_specs(path)


def test_build_released_and_openai_and_vllm(data_dir):
    specs = {s.slug: s for s in load_default_specs()}
    released = build_backend(specs["gpt4o"], data_dir=data_dir)
    assert isinstance(released, ReleasedBackend) and released.slug == "gpt4o"
    assert released.identity().model_id == specs["gpt4o"].model

    spec = LLMSpec(
        slug="local-judge",
        backend="openai",
        model="Qwen/Qwen2.5-7B-Instruct",
        options={
            "base_url": "http://127.0.0.1:8000/v1",
            "api_key_env": None,
            "price_input_per_1m": 0.5,
            "price_output_per_1m": 1.5,
            "max_concurrency": 2,
            "top_logprobs": 5,
        },
    )
    backend = build_backend(spec)
    assert isinstance(backend, OpenAIBackend) and isinstance(backend, LLMBackend)
    assert backend.price == Price(0.5, 1.5) and backend.max_concurrency == 2 and backend.top_logprobs == 5
    assert backend.api_key_env is None

    vspec = LLMSpec(
        slug="l70",
        backend="vllm",
        model="meta-llama/Meta-Llama-3-70B-Instruct",
        dtype="bfloat16",
        options={"tensor_parallel_size": 2},
    )
    v = build_backend(vspec)
    assert isinstance(v, VLLMBackend) and v.engine_args()["tensor_parallel_size"] == 2
    assert v.engine_args()["enable_prefix_caching"] is True  # nothing was built or imported yet


def test_build_transformers_resolves_the_embedded_model_lazily(monkeypatch, tmp_path):
    made = {}

    class FakeTransformersBackend:
        def __init__(self, model, revision=None, **kwargs):
            made.update(model=model, revision=revision, **kwargs)

    # the registry imports the backend class at module level: patch the name it calls
    monkeypatch.setattr("hlv_assets.llm.registry.TransformersBackend", FakeTransformersBackend)
    import hlv_assets.llm.embedded as embedded

    monkeypatch.setattr(embedded, "ensure_smollm2", lambda: tmp_path / "smollm2-135m")
    small = next(s for s in load_default_specs() if s.slug == "smollm2-135m")
    build_backend(small)
    assert made == {"model": str(tmp_path / "smollm2-135m"), "revision": None, "dtype": "float32",
                    "batch_size": small.options["batch_size"]}


def test_importing_the_registry_stays_light():
    code = (
        "import sys, hlv_assets.llm.registry as r; r.load_default_specs(); "
        "bad = [m for m in ('torch', 'transformers', 'vllm', 'dagster', 'httpx') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_allowed_option_is_a_constructor_argument():
    import inspect

    from hlv_assets.llm.registry import JUDGE_OPTIONS, OPTIONS
    from hlv_assets.llm.transformers_backend import TransformersBackend

    price_options = {"price_input_per_1m", "price_output_per_1m"}  # turned into price=Price(...)
    for backend, cls in (
        ("transformers", TransformersBackend),
        ("vllm", VLLMBackend),
        ("openai", OpenAIBackend),
    ):
        accepted = set(inspect.signature(cls).parameters)
        assert OPTIONS[backend] - price_options - JUDGE_OPTIONS <= accepted, backend
        assert not JUDGE_OPTIONS & accepted  # judging options never reach a backend
