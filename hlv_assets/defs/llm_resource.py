"""The LLM resource: backends built from the registry in the store, wrapped in the content-addressed cache."""

from __future__ import annotations

import dataclasses
import threading

import dagster as dg
from pydantic import Field

from hlv_assets.lib import settings
from hlv_assets.lib.profiles import get_profile
from hlv_assets.llm.cache import CachedLLM
from hlv_assets.llm.registry import LLMSpec, build_backend
from hlv_assets.llm.tiny import tiny_backend
from hlv_assets.store import registry
from hlv_assets.store.db import get_engine
from hlv_assets.store.results import SqlCallStore

_BACKENDS: dict[str, object] = {}


_LOCK = threading.Lock()


class LLMResource(dg.ConfigurableResource):
    """Builds each registered LLM once per process; every call goes through the call cache in the store.

    `budget_usd` (default `HLV_BUDGET_USD`) caps what one asset partition may spend (None: no cap); a run
    stops before it would pass the cap. Paid backends need a price in their registry entry for the cap.
    """

    budget_usd: float | None = Field(default_factory=settings.budget_usd)
    db_url: str | None = None

    def _engine(self):
        return get_engine(self.db_url or None)

    def spec(self, slug: str):
        return LLMSpec.from_dict(registry.get(self._engine(), slug))

    def backend(self, slug: str, profile: str):
        """The raw backend (cached per process); the `tiny` profile swaps local models for random tiny ones."""
        spec = self.spec(slug)
        key = f"{profile}:{spec.to_dict()}"
        with _LOCK:
            if key not in _BACKENDS:
                if get_profile(profile).random_models and spec.backend == "transformers":
                    _BACKENDS[key] = tiny_backend()
                else:
                    _BACKENDS[key] = build_backend(_with_profile(spec, get_profile(profile)))
            return _BACKENDS[key]

    def cached(self, slug: str, profile: str, progress=None):
        """The LLM behind the call cache; `progress` (e.g. `context.log.info`) gets a line every few seconds
        while uncached prompts are sent: done / total, prompts/s, ETA."""
        backend = self.backend(slug, profile)
        return CachedLLM(backend, SqlCallStore(self._engine()), budget_usd=self.budget_usd, progress=progress,
                         chunk_size=getattr(backend, "chunk_prompts", 64))


def _with_profile(spec, profile):
    """The spec with the profile's defaults for what its registration leaves unset (a transformers judge's
    `prefix_tree`)."""
    if spec.backend == "transformers" and profile.prefix_tree and "prefix_tree" not in spec.options:
        return dataclasses.replace(spec, options={**spec.options, "prefix_tree": True})
    return spec
