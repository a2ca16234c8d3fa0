"""Content-addressed cache in front of any LLM backend: resumable runs, counters, a spending cap and a dry run.

`CachedLLM` is itself an `LLMBackend`. Every call is keyed by `base.call_key` (backend, model id, revision,
dtype, operation, full prompt, decoding parameters). All keys are looked up first; only the misses go to the
backend, in chunks, and each chunk's results are `put` into the `CallStore` as soon as the chunk returns, so
a process killed halfway loses at most the chunk in flight. Errors are never stored.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from hlv_assets.lib.progress import Progress
from hlv_assets.llm.base import (
    GENERATE,
    LABEL_LOGITS,
    Generation,
    GenerationParams,
    LabelScores,
    LLMBackend,
    LLMIdentity,
    call_key,
)
from hlv_assets.llm.callstore import CallStore

logger = logging.getLogger(__name__)

#: Version of the record layout written to the CallStore (part of every record, not of the key).
RECORD_VERSION = 1
#: Backends that run locally or replay files: free unless a price is given.
FREE_BACKENDS = frozenset({"transformers", "vllm", "released"})


class BudgetExceeded(RuntimeError):
    """The next calls would push this run's spending over its cap; nothing was sent for them."""


class PartialBatchError(RuntimeError):
    """A backend call on a batch failed for some prompts after others had succeeded.

    `results` maps the batch position of each prompt that succeeded to its result (Generation or LabelScores);
    `errors` maps each failed position to a message. `CachedLLM` stores the successes before re-raising, so a
    retry only asks for the prompts that failed. Backends raise it; messages must not hold secrets.
    """

    def __init__(self, message: str, results: dict[int, Any], errors: dict[int, str]) -> None:
        super().__init__(message)
        self.results = results
        self.errors = errors


@dataclass(frozen=True)
class Price:
    """USD per one million input (prompt) and output (completion) tokens."""

    input_per_1m: float = 0.0
    output_per_1m: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1_000_000


@dataclass
class CacheCounters:
    """What a CachedLLM did: `calls` prompts asked for, `hits` served from the store, `misses` sent to the
    backend (after removing `duplicates` within one request), `errors` prompts whose call failed, and the tokens
    and USD of the calls actually made (hits cost nothing)."""

    calls: int = 0
    hits: int = 0
    misses: int = 0
    duplicates: int = 0
    errors: int = 0
    batches: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CallPlan:
    """Dry run of one request: how many prompts, how many are already stored, how many calls would be made,
    and the estimated tokens and USD of those calls (completion tokens are the `max_new_tokens` upper bound)."""

    operation: str
    prompts: int
    unique: int
    hits: int
    misses: int
    est_prompt_tokens: int
    est_completion_tokens: int
    est_cost_usd: float

    def as_dict(self) -> dict:
        return asdict(self)


def approx_token_count(text: str) -> int:
    """Rough token count for estimates without a tokenizer (about four characters per token)."""
    return max(1, math.ceil(len(text) / 4))


def generation_to_record(gen: Generation) -> dict:
    record = asdict(gen)
    record.pop("cached", None)
    return {"v": RECORD_VERSION, "operation": GENERATE, **record}


def generation_from_record(record: dict) -> Generation:
    if record.get("operation") != GENERATE or not isinstance(record.get("text"), str):
        raise ValueError("not a generation record")
    return Generation(
        text=record["text"],
        prompt_tokens=int(record.get("prompt_tokens", 0)),
        completion_tokens=int(record.get("completion_tokens", 0)),
        latency_s=float(record.get("latency_s", 0.0)),
        cost_usd=float(record.get("cost_usd", 0.0)),
        cached=True,
        finish_reason=record.get("finish_reason"),
    )


def label_scores_to_record(scores: LabelScores) -> dict:
    record = asdict(scores)
    record.pop("cached", None)
    record["letters"] = list(scores.letters)
    return {"v": RECORD_VERSION, "operation": LABEL_LOGITS, **record}


def label_scores_from_record(record: dict) -> LabelScores:
    if record.get("operation") != LABEL_LOGITS or not isinstance(record.get("scores"), list):
        raise ValueError("not a label-scores record")
    return LabelScores(
        scores=[None if s is None else float(s) for s in record["scores"]],
        kind=record["kind"],
        letters=tuple(record["letters"]),
        token_ids=None if record.get("token_ids") is None else [int(t) for t in record["token_ids"]],
        letter_mass=record.get("letter_mass"),
        prompt_tokens=int(record.get("prompt_tokens", 0)),
        cached=True,
        top_k_floor=None if record.get("top_k_floor") is None else float(record["top_k_floor"]),
    )


@dataclass
class _Op:
    """How one operation is called, keyed, estimated, stored and read back."""

    name: str
    params: dict
    send: Callable[[list[str]], list]
    to_record: Callable[[Any], dict]
    from_record: Callable[[dict], Any]
    est_completion_tokens: int
    usage: Callable[[Any], tuple[int, int, float | None]]


class CachedLLM:
    """An LLMBackend that answers from a CallStore where it can and asks `backend` only for the rest.

    - `budget_usd`: spending cap for this object's lifetime (plus `spent_usd` already spent elsewhere). Before
      any call the estimated cost of the pending misses is checked, and again before each chunk with the real
      spending so far; `BudgetExceeded` is raised before the cap would be passed. Estimates are scaled up by
      the actual/estimated ratio of the calls already made when that ratio exceeds 1. A cap needs a price:
      from `price`, else the backend's `price` attribute, else zero for local backends (FREE_BACKENDS); any
      other backend without a price is refused.
    - `chunk_size`: misses per backend call; each chunk is stored as soon as it returns.
    - `token_counter`: prompt-token estimator for budgets and `plan` (default: characters / 4).
    - `progress`: where progress lines go while misses are sent (done / total, prompts/s, ETA; every few s).
    """

    def __init__(
        self,
        backend: LLMBackend,
        store: CallStore,
        *,
        budget_usd: float | None = None,
        spent_usd: float = 0.0,
        price: Price | None = None,
        chunk_size: int = 64,
        token_counter: Callable[[str], int] = approx_token_count,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.backend = backend
        self.store = store
        self.price = price if price is not None else getattr(backend, "price", None)
        if self.price is None and backend.identity().backend in FREE_BACKENDS:
            self.price = Price()
        if budget_usd is not None:
            if budget_usd < 0:
                raise ValueError("budget_usd must be non-negative")
            if self.price is None:
                raise ValueError(
                    f"a budget needs a price: pass price=Price(...) for backend {backend.identity().backend!r}"
                )
        self.budget_usd = budget_usd
        self.spent_offset_usd = spent_usd
        self.chunk_size = chunk_size
        self.token_counter = token_counter
        self.progress = progress
        self.counters = CacheCounters()
        # Estimated vs. actual cost of the calls made so far: when estimates run low, later ones are scaled up.
        self._estimated_sent_usd = 0.0
        self._actual_sent_usd = 0.0

    # -- LLMBackend ---------------------------------------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[str]:
        return self.backend.capabilities

    def identity(self) -> LLMIdentity:
        return self.backend.identity()

    def generate(self, prompts: list[str], params: GenerationParams | None = None) -> list[Generation]:
        return self._run(self._generate_op(params or GenerationParams()), prompts)

    def label_logits(
        self, prompts: list[str], letters: tuple[str, ...] = ("A", "B", "C")
    ) -> list[LabelScores]:
        return self._run(self._label_op(tuple(letters)), prompts)

    # -- dry run and budget ---------------------------------------------------------------------------------------
    @property
    def spent_usd(self) -> float:
        return self.spent_offset_usd + self.counters.cost_usd

    def plan(
        self,
        prompts: Sequence[str],
        params: GenerationParams | None = None,
        *,
        operation: str = GENERATE,
        letters: tuple[str, ...] = ("A", "B", "C"),
    ) -> CallPlan:
        """What `generate` (or `label_logits` with operation=LABEL_LOGITS) would send, without sending it."""
        if operation == GENERATE:
            op = self._generate_op(params or GenerationParams())
        elif operation == LABEL_LOGITS:
            op = self._label_op(tuple(letters))
        else:
            raise ValueError(f"unknown operation {operation!r}")
        keys, unique, found = self._lookup(op, list(prompts))
        pending = [p for k, p in unique.items() if k not in found]
        pt, ct, cost = self._estimate(op, pending)
        return CallPlan(
            operation=op.name,
            prompts=len(keys),
            unique=len(unique),
            hits=sum(1 for k in keys if k in found),
            misses=len(pending),
            est_prompt_tokens=pt,
            est_completion_tokens=ct,
            est_cost_usd=cost,
        )

    def _estimate(self, op: _Op, prompts: list[str]) -> tuple[int, int, float]:
        pt = sum(self.token_counter(p) for p in prompts)
        ct = op.est_completion_tokens * len(prompts)
        cost = self.price.cost(pt, ct) if self.price is not None else 0.0
        return pt, ct, cost

    @property
    def estimate_correction(self) -> float:
        """Actual / estimated cost of the calls made so far (at least 1): applied to the next estimates."""
        if self._estimated_sent_usd <= 0:
            return 1.0
        return max(1.0, self._actual_sent_usd / self._estimated_sent_usd)

    def _check_budget(self, op: _Op, prompts: list[str], what: str) -> None:
        if self.budget_usd is None or not prompts:
            return
        est = self._estimate(op, prompts)[2] * self.estimate_correction
        if self.spent_usd + est > self.budget_usd:
            ident = self.backend.identity()
            raise BudgetExceeded(
                f"budget of ${self.budget_usd:.4f} would be exceeded by {what}: spent ${self.spent_usd:.4f}, "
                f"{len(prompts)} pending {op.name} calls to {ident.backend}:{ident.model_id} estimated at "
                f"${est:.4f}; nothing was sent for them"
            )

    # -- the cached call -----------------------------------------------------------------------------------------
    def _generate_op(self, params: GenerationParams) -> _Op:
        def usage(g: Generation) -> tuple[int, int, float | None]:
            return g.prompt_tokens, g.completion_tokens, g.cost_usd or None

        return _Op(
            name=GENERATE,
            params=params.as_dict(),
            send=lambda ps: self.backend.generate(ps, params),
            to_record=generation_to_record,
            from_record=generation_from_record,
            est_completion_tokens=params.max_new_tokens,
            usage=usage,
        )

    def _label_op(self, letters: tuple[str, ...]) -> _Op:
        def usage(s: LabelScores) -> tuple[int, int, float | None]:
            return s.prompt_tokens, 1, None

        return _Op(
            name=LABEL_LOGITS,
            params={"letters": list(letters)},
            send=lambda ps: self.backend.label_logits(ps, letters),
            to_record=label_scores_to_record,
            from_record=label_scores_from_record,
            est_completion_tokens=1,
            usage=usage,
        )

    def _lookup(self, op: _Op, prompts: list[str]) -> tuple[list[str], dict[str, str], dict[str, Any]]:
        """Keys in input order, unique key -> prompt (first occurrence order), and decoded hits."""
        ident = self.backend.identity()
        keys = [call_key(ident, op.name, p, op.params) for p in prompts]
        unique: dict[str, str] = {}
        for k, p in zip(keys, prompts, strict=True):
            unique.setdefault(k, p)
        found: dict[str, Any] = {}
        for k, record in self.store.get_many(list(unique)).items():
            try:
                found[k] = op.from_record(record)
            except (KeyError, TypeError, ValueError):
                logger.warning("unreadable cached %s record %s…: calling again", op.name, k[:12])
        return keys, unique, found

    def _account(self, op: _Op, result: Any) -> None:
        pt, ct, cost = op.usage(result)
        self.counters.prompt_tokens += pt
        self.counters.completion_tokens += ct
        if cost is None:
            cost = self.price.cost(pt, ct) if self.price is not None else 0.0
        self.counters.cost_usd += cost

    def _save(self, op: _Op, key: str, result: Any, results: dict[str, Any]) -> None:
        ident = self.backend.identity()
        self.store.put(key, {**op.to_record(result), "backend": ident.backend, "model_id": ident.model_id})
        result.cached = False
        results[key] = result
        self._account(op, result)

    def _run(self, op: _Op, prompts: list[str]) -> list:
        prompts = list(prompts)
        keys, unique, results = self._lookup(op, prompts)
        pending = [(k, p) for k, p in unique.items() if k not in results]
        self.counters.calls += len(prompts)
        self.counters.hits += sum(1 for k in keys if k in results)
        self.counters.duplicates += len(prompts) - len(unique)
        self._check_budget(op, [p for _, p in pending], "this request")
        bar = None
        if self.progress is not None and pending:
            what = f"{op.name} on {self.backend.identity().model_id}"
            self.progress(f"{what}: {len(pending)} of {len(prompts)} prompts to send (the others: call cache)")
            bar = Progress(len(pending), self.progress, what=what, unit="prompts")

        for start in range(0, len(pending), self.chunk_size):
            chunk = pending[start : start + self.chunk_size]
            chunk_prompts = [p for _, p in chunk]
            self._check_budget(op, chunk_prompts, f"the chunk starting at miss {start}")
            chunk_estimate = self._estimate(op, chunk_prompts)[2]
            cost_before = self.counters.cost_usd
            self.counters.misses += len(chunk)
            self.counters.batches += 1
            try:
                outs = op.send(chunk_prompts)
            except PartialBatchError as exc:
                for i, result in exc.results.items():
                    self._save(op, chunk[i][0], result, results)
                self.counters.errors += len(chunk) - len(exc.results)
                self._estimated_sent_usd += chunk_estimate * len(exc.results) / len(chunk)
                self._actual_sent_usd += self.counters.cost_usd - cost_before
                raise
            except Exception:
                self.counters.errors += len(chunk)
                raise
            if len(outs) != len(chunk):
                self.counters.errors += len(chunk)
                raise RuntimeError(f"backend returned {len(outs)} results for {len(chunk)} prompts")
            for (key, _), result in zip(chunk, outs, strict=True):
                self._save(op, key, result, results)
            self._estimated_sent_usd += chunk_estimate
            self._actual_sent_usd += self.counters.cost_usd - cost_before
            if bar is not None:
                bar.update(start + len(chunk))
        # Copies: the same key may appear several times and callers may mutate what they get.
        return [replace(results[k]) for k in keys]
