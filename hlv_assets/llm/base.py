"""The one interface every LLM backend implements, and the records it returns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol, runtime_checkable

GENERATE = "generate"
LABEL_LOGITS = "label_logits"


class CapabilityError(RuntimeError):
    """The backend cannot do what was asked (for example label logits from a replay of published text)."""


@dataclass(frozen=True)
class GenerationParams:
    """Decoding parameters; greedy by default (the papers did not publish theirs)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Generation:
    """One generated answer with its cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False
    #: "stop" (ended by itself), "length" (cut at max_new_tokens) or None (unknown); parsing uses it
    finish_reason: str | None = None


@dataclass
class LabelScores:
    """Scores of the option letters at the first generated position of one prompt.

    `scores[i]` belongs to `letters[i]`; None means the backend did not return that letter (for example it
    fell outside an API's top-k log-probabilities): it is recorded as missing, never filled with a number.
    `kind` says whether the scores are raw logits or log-probabilities; `letter_mass` is the probability the
    letters receive after a softmax over the whole vocabulary (None when unknown). `top_k_floor` is the smallest
    log-probability of a top-k list (None when the backend returned full scores): a letter missing from that list
    scored at most this, and the judge's `floor` rule for missing letters fills it in.
    """

    scores: list[float | None]
    kind: Literal["logits", "logprobs"]
    letters: tuple[str, ...] = ("A", "B", "C")
    token_ids: list[int] | None = None
    letter_mass: float | None = None
    prompt_tokens: int = 0
    cached: bool = False
    top_k_floor: float | None = None


@dataclass(frozen=True)
class LLMIdentity:
    """What makes two backends' answers interchangeable: the cache key and the audit trail use it."""

    backend: str
    model_id: str
    revision: str = ""
    dtype: str = ""
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class LLMBackend(Protocol):
    """generate(prompts, params) and label_logits(prompts, letters); prompts are user messages (the backend
    applies the chat template with the generation prompt where it has one)."""

    capabilities: frozenset[str]

    def identity(self) -> LLMIdentity: ...

    def generate(self, prompts: list[str], params: GenerationParams) -> list[Generation]: ...

    def label_logits(self, prompts: list[str], letters: tuple[str, ...] = ("A", "B", "C")) -> list[LabelScores]: ...


def call_key(identity: LLMIdentity, operation: str, prompt: str, params: dict) -> str:
    """Content address of one LLM call: backend, model id, revision, dtype, operation, full prompt, parameters."""
    payload = json.dumps(
        {"id": identity.as_dict(), "op": operation, "prompt": prompt, "params": params},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
