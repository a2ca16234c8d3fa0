"""Any OpenAI-compatible chat-completions endpoint (OpenAI, a vLLM server, ...) as an LLMBackend, over httpx.

`base_url` is the API root in the OpenAI SDK's sense (it ends in `/v1`); requests go to
`{base_url}/chat/completions`. The API key is read from the environment variable named by `api_key_env` when
the first request is made; it is sent only in the Authorization header and is redacted from every message,
log line, repr and identity this module produces.

Requests run in a thread pool bounded by `max_concurrency` (a semaphore also bounds them across concurrent
calls on one backend). 429, 5xx, timeouts, transport errors and malformed JSON are retried up to `max_retries`
times with exponential backoff and jitter; a Retry-After (or retry-after-ms) header is honoured. Other 4xx
answers are not retried. The HTTP side (key, retries, concurrency) is `hlv_assets.llm.openai_client`.
"""

from __future__ import annotations

import math

from hlv_assets.llm.base import GENERATE, LABEL_LOGITS, Generation, GenerationParams, LabelScores, LLMIdentity
from hlv_assets.llm.cache import Price
from hlv_assets.llm.openai_client import (
    REDACTED,
    MissingAPIKey,
    OpenAIClient,
    OpenAIError,
    RequestStats,
    RetriesExhausted,
    parse_retry_after,
    public_url,
)

__all__ = [
    "DEFAULT_PRICES",
    "REDACTED",
    "MissingAPIKey",
    "OpenAIBackend",
    "OpenAIError",
    "RequestStats",
    "RetriesExhausted",
    "parse_retry_after",
]

#: USD per 1M input / output tokens of a few OpenAI models (list prices; configure `price` to override).
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-2024-08-06": Price(2.50, 10.00),
    "gpt-4o-2024-11-20": Price(2.50, 10.00),
    "gpt-4o-2024-05-13": Price(5.00, 15.00),
    "gpt-4o-mini": Price(0.15, 0.60),
}


class OpenAIBackend:
    """Chat completions for `generate`; first-token top log-probabilities for `label_logits`.

    `label_logits` asks for `logprobs=true, top_logprobs=top_logprobs, max_tokens=1` and returns
    LabelScores(kind="logprobs"); a letter that is not among the top-k tokens is None (never filled here: the
    judge's `missing_letters` rule decides, with `top_k_floor`, the smallest log-probability of the list). Tokens
    are matched exactly (`"A"`, not `" A"`). `price` (USD per 1M tokens) defaults to DEFAULT_PRICES for known
    model names, else None (unknown: costs count as 0 and a budget cap refuses to run; give `Price()` for a
    free local server). Cost is recorded per Generation and in `stats`.
    """

    capabilities = frozenset({GENERATE, LABEL_LOGITS})
    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        revision: str = "",
        price: Price | None = None,
        max_concurrency: int = 4,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 10.0,
        max_retries: int = 5,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        retry_after_max_s: float = 600.0,
        top_logprobs: int = 20,
        max_tokens_field: str = "max_tokens",
        extra_body: dict | None = None,
        seed: int | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_retries < 0:
            raise ValueError("max_retries must be non-negative")
        if not 1 <= top_logprobs <= 20:
            raise ValueError("top_logprobs must be between 1 and 20 (the OpenAI limit)")
        self.model = model
        self.revision = revision
        # None (unknown model, no price configured): costs are recorded as 0 and a CachedLLM budget is refused.
        self.price: Price | None = price if price is not None else DEFAULT_PRICES.get(model)
        self.top_logprobs = top_logprobs
        self.max_tokens_field = max_tokens_field
        self.extra_body = dict(extra_body or {})
        self._client = OpenAIClient(
            model, base_url=base_url, api_key_env=api_key_env, max_concurrency=max_concurrency,
            timeout_s=timeout_s, connect_timeout_s=connect_timeout_s, max_retries=max_retries,
            backoff_base_s=backoff_base_s, backoff_max_s=backoff_max_s, retry_after_max_s=retry_after_max_s,
            seed=seed)

    # -- the HTTP client's settings and counters ---------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self._client.base_url

    @property
    def api_key_env(self) -> str | None:
        return self._client.api_key_env

    @property
    def max_concurrency(self) -> int:
        return self._client.max_concurrency

    @property
    def max_retries(self) -> int:
        return self._client.max_retries

    @property
    def stats(self) -> RequestStats:
        return self._client.stats

    def redact(self, text: str) -> str:
        """`text` with the API key (if loaded) replaced by a mask."""
        return self._client.redact(text)

    def close(self) -> None:
        self._client.close()

    # -- identity, repr ------------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(model={self.model!r}, base_url={public_url(self.base_url)!r}, "
            f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency})"
        )

    def identity(self) -> LLMIdentity:
        return LLMIdentity(
            backend="openai",
            model_id=self.model,
            revision=self.revision,
            extra={
                "base_url": public_url(self.base_url),
                "top_logprobs": self.top_logprobs,
                **({"extra_body": self.extra_body} if self.extra_body else {}),
            },
        )
    def _record_usage(self, prompt_tokens: int, completion_tokens: int) -> float:
        cost = self.price.cost(prompt_tokens, completion_tokens) if self.price is not None else 0.0
        self._client.record_usage(prompt_tokens, completion_tokens, cost)
        return cost

    # -- the LLMBackend operations --------------------------------------------------------------------------------
    @staticmethod
    def _usage(data: dict) -> tuple[int, int]:
        usage = data.get("usage") or {}
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)

    def _generate_one(self, prompt: str, params: GenerationParams) -> Generation:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            self.max_tokens_field: params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            **self.extra_body,
        }
        if params.seed is not None:
            body["seed"] = params.seed

        def parse(data: dict) -> tuple[str, str | None, int, int]:
            text = data["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("message content is not a string")
            return (text, data["choices"][0].get("finish_reason"), *self._usage(data))

        (text, reason, pt, ct), latency = self._client.request(body, parse)
        cost = self._record_usage(pt, ct)
        return Generation(text=text, prompt_tokens=pt, completion_tokens=ct, latency_s=latency, cost_usd=cost,
                          finish_reason=reason)

    def _label_one(self, prompt: str, letters: tuple[str, ...]) -> LabelScores:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            self.max_tokens_field: 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
            **self.extra_body,
        }

        def parse(data: dict) -> tuple[list[float | None], float | None, int, int]:
            top = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            if not isinstance(top, list):
                raise TypeError("top_logprobs is not a list")
            found: dict[str, float] = {}
            for entry in top:
                token, logprob = entry["token"], float(entry["logprob"])
                found.setdefault(token, logprob)
            floor = min(found.values()) if found else None
            return ([found.get(letter) for letter in letters], floor, *self._usage(data))

        (scores, floor, pt, ct), _ = self._client.request(body, parse)
        self._record_usage(pt, ct)
        mass = math.fsum(math.exp(s) for s in scores) if all(s is not None for s in scores) else None
        return LabelScores(
            scores=scores,
            kind="logprobs",
            letters=tuple(letters),
            token_ids=None,
            letter_mass=mass,
            prompt_tokens=pt,
            top_k_floor=floor,
        )

    def generate(self, prompts: list[str], params: GenerationParams | None = None) -> list[Generation]:
        params = params or GenerationParams()
        self._client.api_key()  # a missing key fails the whole call at once, before any request
        return self._client.map(lambda p: self._generate_one(p, params), list(prompts))

    def label_logits(
        self, prompts: list[str], letters: tuple[str, ...] = ("A", "B", "C")
    ) -> list[LabelScores]:
        self._client.api_key()
        return self._client.map(lambda p: self._label_one(p, tuple(letters)), list(prompts))
