"""LLM specs: what an LLM of the platform is (slug, backend, model, revision, dtype, decoding, capabilities) and
how to build its backend. `llms.yaml` beside this file holds the defaults; syncing them into the results store
is the store's job (`hlv_assets.store.registry`), this module stays pure.

Slugs are partition keys: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit
(so never `| , [ ]`, which Dagster's multi-partition keys reserve). Secrets never go into a spec: an OpenAI
spec names the environment variable that holds its key (`api_key_env`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from hlv_assets.lib.missing_letters import DEFAULT_MISSING_LETTERS, MISSING_LETTER_RULES
from hlv_assets.lib.released import RELEASED_MODELS
from hlv_assets.llm import embedded
from hlv_assets.llm.base import GENERATE, LABEL_LOGITS, GenerationParams, LLMBackend
from hlv_assets.llm.cache import Price
from hlv_assets.llm.released_backend import ReleasedBackend
from hlv_assets.llm.transformers_backend import TransformersBackend
from hlv_assets.llm.vllm_backend import VLLMBackend
from hlv_assets.store import registry as store_registry
from hlv_assets.store.db import get_engine

DEFAULTS_PATH = Path(__file__).with_name("llms.yaml")
BACKENDS = ("transformers", "vllm", "openai", "released")
CAPABILITIES = (GENERATE, LABEL_LOGITS)
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,62}[a-z0-9])?$")
#: `model` values resolved when the backend is built, not when the spec is read.
EMBEDDED_MODELS = ("embedded:smollm2-135m",)

#: The options each backend accepts (everything else is refused, so a typo cannot pass silently).
OPTIONS: dict[str, frozenset[str]] = {
    "transformers": frozenset(
        {
            "device",
            "batch_size",
            "gguf_file",
            "prefix_reuse",
            "prefix_tree",
            "max_length",
            "suffix_batch_size",
            "min_prefix_tokens",
            "max_group",
            "local_files_only",
            "attn_implementation",
            "device_map",
        }
    ),
    "vllm": frozenset(
        {
            "tensor_parallel_size",
            "enable_prefix_caching",
            "chat_template",
            "label_top_k",
            "logprobs_mode",
            "seed",
            "engine_kwargs",
        }
    ),
    "openai": frozenset(
        {
            "base_url",
            "api_key_env",
            "price_input_per_1m",
            "price_output_per_1m",
            "max_concurrency",
            "timeout_s",
            "connect_timeout_s",
            "max_retries",
            "backoff_base_s",
            "backoff_max_s",
            "top_logprobs",
            "max_tokens_field",
            "extra_body",
            "missing_letters",
        }
    ),
    "released": frozenset({"released_as"}),
}
#: Options of the judging step, not of the backend: they change how scores become an MJD, never a request
#: (so they are not passed to the backend and are not part of its identity or the call cache's key).
JUDGE_OPTIONS = frozenset({"missing_letters"})
_SECRET_WORDS = ("api_key", "apikey", "token", "password", "secret")
_PARAM_NAMES = frozenset(f.name for f in fields(GenerationParams))


class SpecError(ValueError):
    """An LLM spec that cannot be used; the message says which slug and which field."""


def validate_slug(slug: str) -> str:
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise SpecError(
            f"invalid LLM slug {slug!r}: use 1-64 lowercase letters, digits, '-' or '.', starting and ending with "
            "a letter or digit (no '|', ',', '[', ']', spaces or capitals)"
        )
    return slug


@dataclass
class LLMSpec:
    """One LLM of the platform. `model` is a model id or path (for `released`: the published folder name; for
    the embedded model: `embedded:smollm2-135m`, resolved at build time). `params` are decoding parameters
    (GenerationParams fields); `options` are backend settings (see OPTIONS)."""

    slug: str
    backend: str
    model: str = ""
    revision: str = ""
    dtype: str = ""
    params: dict = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    active: bool = True
    options: dict = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        self.capabilities = tuple(self.capabilities) or (
            (GENERATE,) if self.backend == "released" else (GENERATE, LABEL_LOGITS)
        )
        self.params = dict(self.params or {})
        self.options = dict(self.options or {})
        self.validate()

    def _fail(self, what: str) -> SpecError:
        return SpecError(f"LLM {self.slug!r}: {what}")

    def validate(self) -> LLMSpec:
        validate_slug(self.slug)
        if self.backend not in BACKENDS:
            raise self._fail(f"backend {self.backend!r} is not one of {BACKENDS}")
        for name in ("model", "revision", "dtype", "description"):
            if not isinstance(getattr(self, name), str):
                raise self._fail(f"{name} must be a string")
        if not isinstance(self.active, bool):
            raise self._fail("active must be true or false")
        bad_caps = [c for c in self.capabilities if c not in CAPABILITIES]
        if bad_caps:
            raise self._fail(f"unknown capabilities {bad_caps}: expected a subset of {CAPABILITIES}")
        if self.backend == "released" and LABEL_LOGITS in self.capabilities:
            raise self._fail("a replay of published generations has no label_logits")
        unknown_params = set(self.params) - _PARAM_NAMES
        if unknown_params:
            raise self._fail(
                f"unknown decoding params {sorted(unknown_params)}: expected {sorted(_PARAM_NAMES)}"
            )
        try:
            GenerationParams(**self.params)
        except TypeError as exc:
            raise self._fail(f"bad decoding params: {exc}") from None
        secret = [
            k for k in self.options if any(w in k.lower() for w in _SECRET_WORDS) and k != "api_key_env"
        ]
        if secret:
            raise self._fail(
                f"options {secret} look like secrets: keep keys in the environment and name the variable in api_key_env"
            )
        base_url = str(self.options.get("base_url") or "")
        if urlsplit(base_url).username or urlsplit(base_url).password:
            raise self._fail("base_url carries credentials (user:password@host): remove them and name the "
                             "environment variable that holds the key in api_key_env")
        unknown_options = set(self.options) - OPTIONS[self.backend]
        if unknown_options:
            raise self._fail(
                f"unknown options {sorted(unknown_options)} for backend {self.backend}: "
                f"expected some of {sorted(OPTIONS[self.backend])}"
            )
        rule = self.options.get("missing_letters", DEFAULT_MISSING_LETTERS)
        if rule not in MISSING_LETTER_RULES:
            raise self._fail(f"option missing_letters={rule!r}: expected one of {', '.join(MISSING_LETTER_RULES)}")
        if self.backend == "released":
            source = self.options.get("released_as", self.slug)
            if source not in RELEASED_MODELS:
                raise self._fail(
                    f"no published generations for {source!r}: expected one of {sorted(RELEASED_MODELS)}"
                )
            if self.model not in ("", RELEASED_MODELS[source]):
                raise self._fail(
                    f"model {self.model!r} does not match the published folder {RELEASED_MODELS[source]!r}"
                )
        elif not self.model:
            raise self._fail("model (an id or a path) is required")
        if self.model.startswith("embedded:") and self.model not in EMBEDDED_MODELS:
            raise self._fail(f"unknown embedded model {self.model!r}: expected one of {EMBEDDED_MODELS}")
        return self

    def generation_params(self) -> GenerationParams:
        return GenerationParams(**self.params)

    def missing_letters(self) -> str:
        """The judge's rule for a letter missing from a top-k list (`hlv_assets.lib.missing_letters`)."""
        return str(self.options.get("missing_letters", DEFAULT_MISSING_LETTERS))

    def price(self) -> Price:
        """USD per 1M tokens (zero unless an OpenAI spec sets it; its backend also knows list prices)."""
        return Price(
            float(self.options.get("price_input_per_1m", 0.0)),
            float(self.options.get("price_output_per_1m", 0.0)),
        )

    def to_dict(self) -> dict:
        return {
            "slug": self.slug,
            "backend": self.backend,
            "model": self.model,
            "revision": self.revision,
            "dtype": self.dtype,
            "params": dict(self.params),
            "capabilities": list(self.capabilities),
            "active": self.active,
            "options": dict(self.options),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LLMSpec:
        if not isinstance(data, dict):
            raise SpecError(f"an LLM spec must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SpecError(
                f"LLM {data.get('slug')!r}: unknown fields {sorted(unknown)}; expected {sorted(known)}"
            )
        if "slug" not in data or "backend" not in data:
            raise SpecError(f"an LLM spec needs slug and backend: {sorted(data)}")
        return cls(**{k: v for k, v in data.items() if v is not None})


def load_specs(path: str | Path) -> list[LLMSpec]:
    """Specs from a YAML file with a top-level `llms:` list; slugs must be unique."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    rows = data.get("llms") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise SpecError(f"{path}: expected a top-level 'llms:' list")
    specs = [LLMSpec.from_dict(row) for row in rows]
    seen: set[str] = set()
    for spec in specs:
        if spec.slug in seen:
            raise SpecError(f"{path}: slug {spec.slug!r} appears twice")
        seen.add(spec.slug)
    return specs


def load_default_specs() -> list[LLMSpec]:
    """The default LLMs of `llms.yaml` (the three published replays and the embedded SmolLM2-135M)."""
    return load_specs(DEFAULTS_PATH)


def sync_registry(engine=None) -> list[str]:
    """The YAML defaults into the store's registry (missing slugs only: what a user set wins); returns the
    active slugs."""
    engine = engine or get_engine()
    store_registry.sync_defaults(engine, [s.to_dict() for s in load_default_specs()])
    return [e.slug for e in store_registry.entries(engine, active_only=True)]


@dataclass(frozen=True)
class RegistryEntry:
    """An LLM as partitions and automation see it: active or retired, and what it can do."""

    slug: str
    active: bool
    capabilities: frozenset[str]

    def can(self, capability: str) -> bool:
        return self.active and capability in self.capabilities


def registry_state(engine=None) -> dict[str, RegistryEntry]:
    """Every LLM of the store's registry (retired ones included), by slug. An entry whose spec no longer
    validates (a hand-edited store) gets no capabilities, so nothing is ever offered or automated for it."""
    out = {}
    for entry in store_registry.entries(engine or get_engine()):
        try:
            capabilities = frozenset(LLMSpec.from_dict(entry.spec).capabilities)
        except SpecError:
            capabilities = frozenset()
        out[entry.slug] = RegistryEntry(entry.slug, bool(entry.active), capabilities)
    return out


def resolve_model(spec: LLMSpec) -> str:
    """The model id or local path to load; `embedded:` models are fetched/converted here (lazily imported)."""
    if spec.model == "embedded:smollm2-135m":
        return str(embedded.ensure_smollm2())
    return spec.model


def build_backend(spec: LLMSpec, *, data_dir: str | Path | None = None) -> LLMBackend:
    """The backend a spec describes (heavy libraries are imported only for the backend asked for).

    `data_dir` is the data pack for `released` replays (default: HLV_DATA_DIR, else ../shared/data).
    """
    spec.validate()
    opts: dict[str, Any] = {k: v for k, v in spec.options.items() if k not in JUDGE_OPTIONS}
    if spec.backend == "transformers":
        kwargs = dict(opts)
        if spec.dtype:
            kwargs["dtype"] = spec.dtype
        return TransformersBackend(resolve_model(spec), revision=spec.revision or None, **kwargs)
    if spec.backend == "vllm":
        return VLLMBackend(resolve_model(spec), revision=spec.revision, dtype=spec.dtype or "auto", **opts)
    if spec.backend == "openai":
        # function-local: heavy library httpx (importing the registry stays light, see test_registry.py)
        from hlv_assets.llm.openai_backend import OpenAIBackend

        price_in = opts.pop("price_input_per_1m", None)
        price_out = opts.pop("price_output_per_1m", None)
        price = None if price_in is None and price_out is None else spec.price()
        return OpenAIBackend(spec.model, revision=spec.revision, price=price, **opts)
    return ReleasedBackend(opts.get("released_as", spec.slug), data_dir=data_dir)
