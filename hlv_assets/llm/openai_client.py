"""The HTTP side of the OpenAI-compatible backend: one POST to `{base_url}/chat/completions` with the API key
from the environment (never printed: redacted from every message), bounded concurrency, retries with
exponential backoff and jitter (Retry-After honoured), and a partial-batch error that keeps what succeeded."""

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

from hlv_assets.llm.cache import PartialBatchError

logger = logging.getLogger(__name__)

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


def public_url(url: str) -> str:
    """`url` without user info, query or fragment (where credentials could hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


class OpenAIClient:
    """Chat-completion requests of one backend (`name`, for messages): the key, the HTTP client, the
    concurrency slots, retries and the request counters (`stats`)."""

    def __init__(self, name: str, *, base_url: str, api_key_env: str | None, max_concurrency: int,
                 timeout_s: float, connect_timeout_s: float, max_retries: int, backoff_base_s: float,
                 backoff_max_s: float, retry_after_max_s: float, seed: int | None) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env or None  # None or "": a keyless server, no Authorization header
        self.max_concurrency = max_concurrency
        self.timeout = httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s))
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_max_s = retry_after_max_s
        self._rng = random.Random(seed)
        self._secret: _Secret | None = None
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._in_flight = 0
        self.stats = RequestStats(retryable_errors={})

    def __repr__(self) -> str:
        return f"OpenAIClient({self.name!r}, base_url={public_url(self.base_url)!r}, api_key_env={self.api_key_env!r})"

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

    def api_key(self) -> str | None:
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

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Wait before attempt `attempt + 1`: Retry-After when given, else exponential with equal jitter."""
        if retry_after is not None:
            return min(retry_after, self.retry_after_max_s) + self._rng.uniform(0, 0.1 * self.backoff_base_s)
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    def _attempt(self, body: dict, parse: Callable[[dict], Any]) -> Any:
        headers = {"Content-Type": "application/json"}
        key = self.api_key()
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
            raise OpenAIError(f"HTTP {status} from {public_url(url)} (not retried): {snippet}")
        try:
            return parse(resp.json())
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise _Retryable(f"malformed response ({type(exc).__name__})") from None

    def request(self, body: dict, parse: Callable[[dict], Any]) -> tuple[Any, float]:
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
                        f"{self.name} at {public_url(self.base_url)}: gave up after {attempt} attempts "
                        f"(max_retries={self.max_retries}); last error: {exc.reason}"
                    ) from None
                delay = self._backoff(attempt, exc.retry_after)
                with self._lock:
                    self.stats.retries += 1
                logger.warning(
                    "%s: %s on attempt %d/%d; retrying in %.2f s",
                    self.name,
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

    def map(self, fn: Callable[[str], Any], prompts: list[str]) -> list:
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

    def record_usage(self, prompt_tokens: int, completion_tokens: int, cost: float) -> None:
        with self._lock:
            self.stats.prompt_tokens += prompt_tokens
            self.stats.completion_tokens += completion_tokens
            self.stats.cost_usd += cost
