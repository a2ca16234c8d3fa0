"""Any OpenAI-compatible chat-completions endpoint (OpenAI, a vLLM server, ...) as an LLMBackend, over httpx.

`base_url` is the API root in the OpenAI SDK's sense (it ends in `/v1`); requests go to
`{base_url}/chat/completions`. The API key is read from the environment variable named by `api_key_env` when
the first request is made; it is sent only in the Authorization header and is redacted from every message,
log line, repr and identity this module produces.

Requests run in a thread pool bounded by `max_concurrency` (a semaphore also bounds them across concurrent
calls on one backend). 429, 5xx, timeouts, transport errors and malformed JSON are retried up to `max_retries`
times with exponential backoff and jitter; a Retry-After (or retry-after-ms) header is honoured. Other 4xx
answers are not retried.
"""

from __future__ import annotations

import email.utils
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from hlv_assets.llm.base import GENERATE, LABEL_LOGITS, Generation, GenerationParams, LabelScores, LLMIdentity
from hlv_assets.llm.cache import PartialBatchError, Price

logger = logging.getLogger(__name__)

#: USD per 1M input / output tokens of a few OpenAI models (list prices; configure `price` to override).
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-2024-08-06": Price(2.50, 10.00),
    "gpt-4o-2024-11-20": Price(2.50, 10.00),
    "gpt-4o-2024-05-13": Price(5.00, 15.00),
    "gpt-4o-mini": Price(0.15, 0.60),
}

REDACTED = "[REDACTED]"


class OpenAIError(RuntimeError):
    """A request that failed for good (a non-retryable answer, or retries exhausted). Never holds the key."""


class RetriesExhausted(OpenAIError):
    """Every attempt of one request failed with a retryable error."""


class MissingAPIKey(OpenAIError):
    """The environment variable that should hold the API key is unset or empty."""


class _Secret:
    """Holds a credential; prints as a mask."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "_Secret('***')"

    __str__ = __repr__


class _Retryable(Exception):
    """Internal: one attempt failed in a way worth retrying."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass
class RequestStats:
    """HTTP-level counters of one backend (all calls together)."""

    requests: int = 0
    successes: int = 0
    failures: int = 0
    retries: int = 0
    retryable_errors: dict[str, int] | None = None
    max_in_flight: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["retryable_errors"] = dict(self.retryable_errors or {})
        return d


def parse_retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or an HTTP date); None if absent/bad."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000.0
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        value = float(raw)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _public_url(url: str) -> str:
    """`url` without user info, query or fragment (where credentials could hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


class OpenAIBackend:
    """Chat completions for `generate`; first-token top log-probabilities for `label_logits`.

    `label_logits` asks for `logprobs=true, top_logprobs=top_logprobs, max_tokens=1` and returns
    LabelScores(kind="logprobs"); a letter that is not among the top-k tokens is None (never filled). Tokens
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
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self.revision = revision
        # None (unknown model, no price configured): costs are recorded as 0 and a CachedLLM budget is refused.
        self.price: Price | None = price if price is not None else DEFAULT_PRICES.get(model)
        self.max_concurrency = max_concurrency
        self.timeout = httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s))
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self.top_logprobs = top_logprobs
        self.max_tokens_field = max_tokens_field
        self.extra_body = dict(extra_body or {})
        self._rng = random.Random(seed)
        self._secret: _Secret | None = None
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._in_flight = 0
        self.stats = RequestStats(retryable_errors={})

    def __getstate__(self) -> dict:
        # Copies and pickles carry no key, client or locks: the key is read from the environment again.
        state = self.__dict__.copy()
        for name in ("_secret", "_client", "_lock", "_slots"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._secret = None
        self._client = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_concurrency)

    # -- identity, repr, secrets ----------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(model={self.model!r}, base_url={_public_url(self.base_url)!r}, "
            f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency})"
        )

    def identity(self) -> LLMIdentity:
        return LLMIdentity(
            backend="openai",
            model_id=self.model,
            revision=self.revision,
            extra={
                "base_url": _public_url(self.base_url),
                "top_logprobs": self.top_logprobs,
                **({"extra_body": self.extra_body} if self.extra_body else {}),
            },
        )

    def _api_key(self) -> str | None:
        if self.api_key_env is None:
            return None
        if self._secret is None:
            value = os.environ.get(self.api_key_env, "")
            if not value:
                raise MissingAPIKey(f"environment variable {self.api_key_env} (the API key) is not set")
            self._secret = _Secret(value)
        return self._secret.get()

    def redact(self, text: str) -> str:
        """`text` with the API key (if loaded) replaced by a mask."""
        if self._secret is not None and self._secret.get():
            text = text.replace(self._secret.get(), REDACTED)
        return text

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                limits = httpx.Limits(
                    max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency
                )
                self._client = httpx.Client(timeout=self.timeout, limits=limits)
            return self._client

    # -- one request with retries ---------------------------------------------------------------------------------
    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Wait before attempt `attempt + 1`: Retry-After when given, else exponential with equal jitter."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_max_s) + self._rng.uniform(0, 0.1 * self.backoff_base_s)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    def _attempt(self, body: dict, parse: Callable[[dict], Any]) -> Any:
        headers = {"Content-Type": "application/json"}
        key = self._api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = f"{self.base_url}/chat/completions"
        with self._slots:
            with self._lock:
                self._in_flight += 1
                self.stats.requests += 1
                self.stats.max_in_flight = max(self.stats.max_in_flight, self._in_flight)
            try:
                resp = self._http().post(url, json=body, headers=headers)
                # Read the whole body inside the timeout and the concurrency slot.
                content = resp.content
            except httpx.TimeoutException as exc:
                raise _Retryable(f"timeout ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                raise _Retryable(f"transport error ({type(exc).__name__})") from None
            finally:
                with self._lock:
                    self._in_flight -= 1
        status = resp.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"HTTP {status}", parse_retry_after(resp.headers))
        if status != 200:
            snippet = self.redact(content[:300].decode("utf-8", "replace"))
            raise OpenAIError(f"HTTP {status} from {_public_url(url)} (not retried): {snippet}")
        try:
            return parse(resp.json())
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _Retryable(f"malformed response ({type(exc).__name__})") from None

    def _request(self, body: dict, parse: Callable[[dict], Any]) -> tuple[Any, float]:
        start = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                result = self._attempt(body, parse)
            except _Retryable as exc:
                with self._lock:
                    seen = self.stats.retryable_errors
                    seen[exc.reason] = seen.get(exc.reason, 0) + 1
                if attempt > self.max_retries:
                    with self._lock:
                        self.stats.failures += 1
                    raise RetriesExhausted(
                        f"{self.model} at {_public_url(self.base_url)}: gave up after {attempt} attempts "
                        f"(max_retries={self.max_retries}); last error: {exc.reason}"
                    ) from None
                delay = self._backoff(attempt, exc.retry_after)
                with self._lock:
                    self.stats.retries += 1
                logger.warning(
                    "%s: %s on attempt %d/%d; retrying in %.2f s",
                    self.model,
                    exc.reason,
                    attempt,
                    self.max_retries + 1,
                    delay,
                )
                time.sleep(delay)
                continue
            except OpenAIError:
                with self._lock:
                    self.stats.failures += 1
                raise
            with self._lock:
                self.stats.successes += 1
            return result, time.monotonic() - start

    def _record_usage(self, prompt_tokens: int, completion_tokens: int) -> float:
        cost = self.price.cost(prompt_tokens, completion_tokens) if self.price is not None else 0.0
        with self._lock:
            self.stats.prompt_tokens += prompt_tokens
            self.stats.completion_tokens += completion_tokens
            self.stats.cost_usd += cost
        return cost

    def _map(self, fn: Callable[[str], Any], prompts: list[str]) -> list:
        """fn over prompts with at most `max_concurrency` in flight; partial results survive a failure."""
        if not prompts:
            return []
        results: dict[int, Any] = {}
        errors: dict[int, str] = {}
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(prompts))) as pool:
            futures = {pool.submit(fn, p): i for i, p in enumerate(prompts)}

            def cancel_rest_on_failure(done) -> None:
                if not done.cancelled() and done.exception() is not None:
                    for other in futures:
                        other.cancel()

            for fut in futures:
                fut.add_done_callback(cancel_rest_on_failure)
            wait(futures)
            for fut, i in futures.items():
                if fut.cancelled():
                    errors[i] = "not sent: an earlier request of the batch failed"
                elif fut.exception() is not None:
                    errors[i] = self.redact(str(fut.exception()))
                else:
                    results[i] = fut.result()
        if errors:
            first = min(i for i in errors if not errors[i].startswith("not sent"))
            raise PartialBatchError(
                f"{len(errors)} of {len(prompts)} requests failed or were not sent; first error: {errors[first]}",
                results,
                errors,
            )
        return [results[i] for i in range(len(prompts))]

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

        (text, reason, pt, ct), latency = self._request(body, parse)
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

        def parse(data: dict) -> tuple[list[float | None], int, int]:
            top = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            if not isinstance(top, list):
                raise TypeError("top_logprobs is not a list")
            found: dict[str, float] = {}
            for entry in top:
                token, logprob = entry["token"], float(entry["logprob"])
                found.setdefault(token, logprob)
            return ([found.get(letter) for letter in letters], *self._usage(data))

        (scores, pt, ct), _ = self._request(body, parse)
        self._record_usage(pt, ct)
        mass = math.fsum(math.exp(s) for s in scores) if all(s is not None for s in scores) else None
        return LabelScores(
            scores=scores,
            kind="logprobs",
            letters=tuple(letters),
            token_ids=None,
            letter_mass=mass,
            prompt_tokens=pt,
        )

    def generate(self, prompts: list[str], params: GenerationParams | None = None) -> list[Generation]:
        params = params or GenerationParams()
        self._api_key()  # a missing key fails the whole call at once, before any request
        return self._map(lambda p: self._generate_one(p, params), list(prompts))

    def label_logits(
        self, prompts: list[str], letters: tuple[str, ...] = ("A", "B", "C")
    ) -> list[LabelScores]:
        self._api_key()
        return self._map(lambda p: self._label_one(p, tuple(letters)), list(prompts))
