"""A deterministic, counting fake LLM backend for tests anywhere in the repository.

`CountingBackend` implements `LLMBackend` without a model: answers are pure functions of the prompt (and the
decoding parameters), so an interrupted-and-resumed run can be compared with an uninterrupted one. It records
every prompt it is sent (in memory and, with `call_log`, durably in a JSON-lines file written *before* it
answers, so even a SIGKILL mid-batch leaves a trace), can be slowed down, and can fail on chosen prompts.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from hlv_assets.llm.base import (
    GENERATE,
    LABEL_LOGITS,
    CapabilityError,
    Generation,
    GenerationParams,
    LabelScores,
    LLMIdentity,
)
from hlv_assets.llm.cache import Price


class FakeBackendError(RuntimeError):
    """Raised by CountingBackend for prompts listed in `fail_prompts`."""


def fake_text(prompt: str, params: GenerationParams | None = None) -> str:
    """The fake answer to a prompt: a stable digest, different for different decoding parameters."""
    params = params or GenerationParams()
    digest = hashlib.sha256(json.dumps([prompt, params.as_dict()], sort_keys=True).encode()).hexdigest()
    return f"* fake explanation {digest[:12]}\n* second point {digest[12:20]}"


def fake_scores(prompt: str, letters: tuple[str, ...]) -> list[float]:
    """Stable pseudo-logits in [30, 33) (the range SmolLM2-135M gives), one per letter."""
    out = []
    for letter in letters:
        h = int(hashlib.sha256(f"{prompt}\x00{letter}".encode()).hexdigest()[:8], 16)
        out.append(30.0 + 3.0 * h / 0xFFFFFFFF)
    return out


class CountingBackend:
    """Deterministic LLMBackend that counts and logs what it is asked.

    `calls` lists (operation, prompt) in arrival order, `batches` the size of each backend call.
    `fail_prompts` maps a prompt to how many times it fails before succeeding (None: always fails).
    """

    def __init__(
        self,
        model_id: str = "fake-model",
        *,
        backend: str = "fake",
        revision: str = "r1",
        dtype: str = "float32",
        capabilities: Iterable[str] = (GENERATE, LABEL_LOGITS),
        call_log: str | Path | None = None,
        delay_s: float = 0.0,
        fail_prompts: dict[str, int | None] | None = None,
        price: Price | None = None,
    ) -> None:
        self.capabilities = frozenset(capabilities)
        self._identity = LLMIdentity(backend=backend, model_id=model_id, revision=revision, dtype=dtype)
        self.call_log = Path(call_log) if call_log is not None else None
        self.delay_s = delay_s
        self.fail_prompts = dict(fail_prompts or {})
        self.price = price
        self.calls: list[tuple[str, str]] = []
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def identity(self) -> LLMIdentity:
        return self._identity

    def count(self, operation: str | None = None) -> int:
        return sum(1 for op, _ in self.calls if operation is None or op == operation)

    def per_prompt(self) -> Counter:
        return Counter(p for _, p in self.calls)

    def _receive(self, operation: str, prompts: list[str]) -> None:
        with self._lock:
            self.calls.extend((operation, p) for p in prompts)
            self.batches.append(len(prompts))
            if self.call_log is not None:
                with self.call_log.open("a", encoding="utf-8") as fh:
                    for p in prompts:
                        fh.write(json.dumps({"op": operation, "prompt": p}) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
        if self.delay_s:
            time.sleep(self.delay_s * len(prompts))
        for p in prompts:
            if p in self.fail_prompts:
                left = self.fail_prompts[p]
                if left is None:
                    raise FakeBackendError(f"fake failure for prompt {p[:40]!r}")
                if left > 0:
                    self.fail_prompts[p] = left - 1
                    raise FakeBackendError(f"fake failure for prompt {p[:40]!r} ({left} left)")

    def generate(self, prompts: list[str], params: GenerationParams) -> list[Generation]:
        if GENERATE not in self.capabilities:
            raise CapabilityError("this fake cannot generate")
        self._receive(GENERATE, prompts)
        out = []
        for p in prompts:
            text = fake_text(p, params)
            pt, ct = len(p.split()), len(text.split())
            cost = self.price.cost(pt, ct) if self.price is not None else 0.0
            out.append(Generation(text=text, prompt_tokens=pt, completion_tokens=ct, cost_usd=cost))
        return out

    def label_logits(
        self, prompts: list[str], letters: tuple[str, ...] = ("A", "B", "C")
    ) -> list[LabelScores]:
        if LABEL_LOGITS not in self.capabilities:
            raise CapabilityError("this fake cannot score labels")
        self._receive(LABEL_LOGITS, prompts)
        return [
            LabelScores(
                scores=fake_scores(p, letters),
                kind="logits",
                letters=tuple(letters),
                token_ids=[100 + i for i in range(len(letters))],
                letter_mass=None,
                prompt_tokens=len(p.split()),
            )
            for p in prompts
        ]


def read_call_log(path: str | Path) -> list[dict]:
    """Entries of a CountingBackend call log (missing file: none)."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
