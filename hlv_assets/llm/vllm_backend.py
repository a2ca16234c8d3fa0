"""vLLM (offline `vllm.LLM`) as an LLMBackend; `import vllm` happens only when an engine is built.

vLLM cannot be installed in CI, so the engine and the SamplingParams class can be injected: anything with
vLLM's interface works (`get_tokenizer()`, `generate(prompts, sampling_params, use_tqdm=...)` returning
objects with `prompt_token_ids` and `outputs[0].text / .token_ids / .logprobs`). The tests drive this adapter
with such a fake engine; the real engine is exercised only where vLLM and a GPU exist.

Prompts are user messages: the tokenizer's chat template is applied with the generation prompt
(`chat_template=False` sends the raw text, for base models), and the engine gets token ids, so nothing is
tokenized twice (no doubled BOS). Prefix caching is on: the judgment prompts of one item share long prefixes.

Label scores: one generated token (`max_tokens=1`, greedy) and the log-probabilities of the exact letter token
ids at that position. vLLM >= 0.20-dev has `SamplingParams(logprob_token_ids=[...])`, which returns exactly
those ids; older versions get `logprobs=label_top_k` (top-k), where a letter outside the top-k is None.
With the engine option `logprobs_mode="raw_logits"` vLLM returns raw logits instead of log-probabilities and
the scores are recorded with kind="logits" (what SPEC §3's `normalize` needs).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from hlv_assets.llm.base import GENERATE, LABEL_LOGITS, Generation, GenerationParams, LabelScores, LLMIdentity

LOGPROBS_MODES = ("raw_logprobs", "raw_logits", "processed_logprobs", "processed_logits")


class LetterTokenError(ValueError):
    """An option letter that is not exactly one token for this tokenizer."""


def letter_token_ids(tokenizer: Any, letters: tuple[str, ...]) -> list[int]:
    """The single token id of each letter as it would start the answer (no leading space)."""
    ids = []
    for letter in letters:
        encoded = list(tokenizer.encode(letter, add_special_tokens=False))
        if len(encoded) != 1:
            raise LetterTokenError(
                f"option letter {letter!r} is {len(encoded)} tokens ({encoded}) for this tokenizer"
            )
        ids.append(int(encoded[0]))
    if len(set(ids)) != len(ids):
        raise LetterTokenError(f"option letters {letters} share token ids {ids}")
    return ids


def _import_vllm() -> Any:
    """`import vllm`, heavy and GPU-only: done when an engine is really needed."""
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(f"the vllm backend needs vLLM (pip install 'hlv-assets[gpu]'): {exc}") from exc
    return vllm


def _logprob_value(entry: Any) -> float:
    """vLLM's Logprob object (`.logprob`) or a bare float."""
    return float(getattr(entry, "logprob", entry))


class VLLMBackend:
    """Batched generation and first-token label scores with vLLM. See the module docstring."""

    capabilities = frozenset({GENERATE, LABEL_LOGITS})

    def __init__(
        self,
        model: str,
        *,
        revision: str = "",
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        enable_prefix_caching: bool = True,
        chat_template: bool = True,
        label_top_k: int = 20,
        logprobs_mode: str = "raw_logprobs",
        seed: int = 0,
        engine_kwargs: dict | None = None,
        engine: Any = None,
        sampling_params_cls: Any = None,
    ) -> None:
        if logprobs_mode not in LOGPROBS_MODES:
            raise ValueError(f"logprobs_mode must be one of {LOGPROBS_MODES}, got {logprobs_mode!r}")
        if tensor_parallel_size < 1:
            raise ValueError("tensor_parallel_size must be at least 1")
        self.model = model
        self.revision = revision
        self.dtype = dtype
        self.tensor_parallel_size = tensor_parallel_size
        self.enable_prefix_caching = enable_prefix_caching
        self.chat_template = chat_template
        self.label_top_k = label_top_k
        self.logprobs_mode = logprobs_mode
        self.seed = seed
        self.engine_kwargs = dict(engine_kwargs or {})
        self._engine = engine
        self._sampling_params_cls = sampling_params_cls
        self._letter_ids: dict[tuple[str, ...], list[int]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VLLMBackend(model={self.model!r}, revision={self.revision!r}, dtype={self.dtype!r}, tp={self.tensor_parallel_size})"

    def identity(self) -> LLMIdentity:
        extra: dict = {"chat_template": self.chat_template}
        if self.logprobs_mode != "raw_logprobs":
            extra["logprobs_mode"] = self.logprobs_mode
        return LLMIdentity(
            backend="vllm", model_id=self.model, revision=self.revision, dtype=self.dtype, extra=extra
        )

    # -- the engine -----------------------------------------------------------------------------------------------
    def engine_args(self) -> dict:
        """Keyword arguments for `vllm.LLM`."""
        args = {
            "model": self.model,
            "dtype": self.dtype or "auto",
            "tensor_parallel_size": self.tensor_parallel_size,
            "enable_prefix_caching": self.enable_prefix_caching,
            "seed": self.seed,
            "max_logprobs": max(20, self.label_top_k),
        }
        if self.revision:
            args["revision"] = self.revision
        if self.logprobs_mode != "raw_logprobs":  # the default; older vLLM lacks the argument
            args["logprobs_mode"] = self.logprobs_mode
        args.update(self.engine_kwargs)
        return args

    def engine(self) -> Any:
        with self._lock:
            if self._engine is None:
                self._engine = _import_vllm().LLM(**self.engine_args())
            return self._engine

    def _sampling_params(self, **kwargs: Any) -> Any:
        if self._sampling_params_cls is None:
            self._sampling_params_cls = _import_vllm().SamplingParams
        return self._sampling_params_cls(**kwargs)

    def _encode(self, prompts: list[str]) -> list[dict]:
        tokenizer = self.engine().get_tokenizer()
        inputs = []
        for prompt in prompts:
            if self.chat_template:
                text = tokenizer.apply_chat_template(
                    [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
                )
                ids = tokenizer.encode(text, add_special_tokens=False)
            else:
                ids = tokenizer.encode(prompt, add_special_tokens=True)
            inputs.append({"prompt_token_ids": list(ids)})
        return inputs

    def _letter_token_ids(self, letters: tuple[str, ...]) -> list[int]:
        if letters not in self._letter_ids:
            self._letter_ids[letters] = letter_token_ids(self.engine().get_tokenizer(), letters)
        return self._letter_ids[letters]

    # -- the LLMBackend operations --------------------------------------------------------------------------------
    def generate(self, prompts: list[str], params: GenerationParams | None = None) -> list[Generation]:
        params = params or GenerationParams()
        if not prompts:
            return []
        sp = self._sampling_params(
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
        )
        start = time.monotonic()
        outputs = self.engine().generate(self._encode(list(prompts)), sp, use_tqdm=False)
        per_prompt = (time.monotonic() - start) / len(prompts)
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        return [
            Generation(
                text=out.outputs[0].text,
                prompt_tokens=len(out.prompt_token_ids),
                completion_tokens=len(out.outputs[0].token_ids),
                latency_s=per_prompt,
                finish_reason=getattr(out.outputs[0], "finish_reason", None),
            )
            for out in outputs
        ]

    def _label_sampling_params(self, ids: list[int]) -> tuple[Any, bool]:
        """(SamplingParams, exact): exact when this vLLM supports `logprob_token_ids`."""
        common = {"max_tokens": 1, "temperature": 0.0}
        try:
            return self._sampling_params(**common, logprob_token_ids=list(ids)), True
        except TypeError:  # vLLM without logprob_token_ids: top-k log-probabilities
            return self._sampling_params(**common, logprobs=self.label_top_k), False

    def label_logits(
        self, prompts: list[str], letters: tuple[str, ...] = ("A", "B", "C")
    ) -> list[LabelScores]:
        if not prompts:
            return []
        letters = tuple(letters)
        ids = self._letter_token_ids(letters)
        sp, exact = self._label_sampling_params(ids)
        outputs = self.engine().generate(self._encode(list(prompts)), sp, use_tqdm=False)
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        kind = "logits" if self.logprobs_mode.endswith("logits") else "logprobs"
        results = []
        for out in outputs:
            steps = out.outputs[0].logprobs
            if not steps:
                raise RuntimeError("vLLM returned no logprobs for the first generated token")
            first = steps[0]
            scores = [_logprob_value(first[i]) if i in first else None for i in ids]
            if exact and any(s is None for s in scores):
                raise RuntimeError(f"vLLM did not return the requested letter ids {ids}: got {sorted(first)}")
            mass = None
            if kind == "logprobs" and all(s is not None for s in scores):
                mass = math.fsum(math.exp(s) for s in scores)
            results.append(
                LabelScores(
                    scores=scores,
                    kind=kind,
                    letters=letters,
                    token_ids=list(ids),
                    letter_mass=mass,
                    prompt_tokens=len(out.prompt_token_ids),
                )
            )
        return results
