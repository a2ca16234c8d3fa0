"""LLM backend on Hugging Face transformers: batched generation and first-token letter logits (SPEC §3).

`TransformersBackend.label_logits` reads the logits of the option letters at the first generated position with
ONE forward pass per prompt (the published code ran ``generate(max_new_tokens=256)`` and kept step 0; that
reference is `reference_label_logits`, for tests and benchmarks):

- prompts are user messages; the tokenizer's chat template is applied with the generation prompt (a tokenizer
  without a template gets the raw text with its special tokens);
- the letter token ids are resolved per tokenizer as the token the letter becomes right after the template's
  assistant header (``...<|im_start|>assistant\\n`` + ``A``), each a single token, and recorded in every
  `LabelScores` with the probability mass the letters get after a softmax over the whole vocabulary;
- prompts are sorted by length and batched with left padding and explicit position ids, so the last real token
  of every row sits at the last position and only that position goes through the LM head (``logits_to_keep``);
- prefix reuse: prompts sharing a long token prefix (the 6 option orders of one item share everything up to
  the options) are grouped (`plan_prefix_groups`); each group's prefix runs once, and its KV cache (a public
  ``DynamicCache``) is copied to the group's rows, which then run only their suffixes. Models whose cache is not
  made of full-attention layers (sliding windows, recurrent layers) fall back to plain batching.

Works with transformers 4.57+ and 5.x (the ``past_key_values`` argument was renamed ``cache`` in 5.x; it is
chosen by inspecting the model's signature). torch and transformers are imported lazily.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hlv_assets.llm.base import (
    GENERATE,
    LABEL_LOGITS,
    Generation,
    GenerationParams,
    LabelScores,
    LLMIdentity,
)

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_LETTERS = ("A", "B", "C")
#: Only this much of each weight file's start and end enters the fingerprint of a local checkpoint.
_FINGERPRINT_BYTES = 1 << 20


class LetterTokenError(ValueError):
    """An option letter that is not a single token for this tokenizer."""


class PromptTooLongError(ValueError):
    """A prompt longer than the backend's max_length (never truncated silently)."""


# --------------------------------------------------------------------------------------------------
# prefix grouping (pure Python, no torch)
# --------------------------------------------------------------------------------------------------


@dataclass
class PrefixGroup:
    """Prompts (indices into the scored list) that share their first `prefix_len` tokens."""

    prefix_len: int
    members: list[int] = field(default_factory=list)


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # the largest m with a[:m] == b[:m]; slices compare in C
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def plan_prefix_groups(
    seqs: Sequence[Sequence[int]], max_group: int = 64, min_prefix: int = 16
) -> tuple[list[PrefixGroup], list[int]]:
    """Partition token sequences into prefix-sharing groups (2 or more members) and singletons.

    The sequences are sorted lexicographically, so sequences with long common prefixes are neighbours; a
    dynamic programme over that order picks the contiguous groups (at most `max_group` members) that save the
    most tokens, (members - 1) × prefix length, with a prefix of at least `min_prefix` tokens. Every member keeps
    at least one suffix token (its last token must run to give the next-token logits).
    """
    n = len(seqs)
    tuples = [tuple(s) for s in seqs]
    order = sorted(range(n), key=tuples.__getitem__)
    adjacent = [_common_prefix_len(tuples[order[k]], tuples[order[k + 1]]) for k in range(n - 1)]
    best = [0] * (n + 1)
    start = list(range(-1, n))  # start[i] = where the group ending before i begins
    prefix_at = [0] * (n + 1)
    for i in range(1, n + 1):
        best[i], start[i], prefix_at[i] = best[i - 1], i - 1, 0
        run_lcp = None
        run_min_len = len(tuples[order[i - 1]])
        for j in range(i - 2, max(-1, i - 1 - max_group), -1):
            run_lcp = adjacent[j] if run_lcp is None else min(run_lcp, adjacent[j])
            run_min_len = min(run_min_len, len(tuples[order[j]]))
            prefix = min(run_lcp, run_min_len - 1)
            if prefix < min_prefix:
                break  # the common prefix only shrinks as the group grows backwards
            value = best[j] + (i - j - 1) * prefix
            if value > best[i]:
                best[i], start[i], prefix_at[i] = value, j, prefix
    groups: list[PrefixGroup] = []
    singles: list[int] = []
    i = n
    while i > 0:
        j = start[i]
        if i - j == 1:
            singles.append(order[j])
        else:
            groups.append(PrefixGroup(prefix_at[i], [order[k] for k in range(j, i)]))
        i = j
    groups.reverse()
    singles.reverse()
    return groups, singles


def _chunks(items: list, size: int) -> list[list]:
    return [items[k : k + size] for k in range(0, len(items), size)]


# --------------------------------------------------------------------------------------------------
# the backend
# --------------------------------------------------------------------------------------------------


def _fingerprint_dir(path: Path, gguf_file: str | None) -> str:
    """Content fingerprint of a local checkpoint: config, and name, size, first and last MiB of each weight file."""
    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        file = path / name
        if file.is_file():
            digest.update(name.encode() + b"\0" + file.read_bytes())
    weights = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    if gguf_file:
        weights.append(path / gguf_file)
    for file in weights:
        if not file.is_file():
            continue
        size = file.stat().st_size
        digest.update(f"{file.name}\0{size}\0".encode())
        with open(file, "rb") as fh:
            digest.update(fh.read(_FINGERPRINT_BYTES))
            if size > 2 * _FINGERPRINT_BYTES:
                fh.seek(size - _FINGERPRINT_BYTES)
                digest.update(fh.read())
    return "local-" + digest.hexdigest()[:16]


def _chat_template_in_dir(path: Path) -> str | None:
    """The chat template saved with a local tokenizer ("" when it has none), read without loading it; None
    when the folder does not say (a GGUF checkpoint: the tokenizer must be loaded)."""
    jinja = path / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    config = path / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text()).get("chat_template") or ""
        return template if isinstance(template, str) else json.dumps(template, sort_keys=True)
    return None


class TransformersBackend:
    """generate and label_logits on a local (or locally cached) causal LM; see the module docstring.

    ``batch_size`` bounds the rows of every prefill forward (plain prompts and shared prefixes);
    ``suffix_batch_size`` (default 4 × batch_size) bounds the rows of the suffix forwards of prefix reuse, which
    hold only a few tokens each. ``max_length`` (default: the model's ``max_position_embeddings``) refuses longer
    prompts instead of truncating them.
    """

    capabilities = frozenset({GENERATE, LABEL_LOGITS})

    def __init__(
        self,
        model: str,
        revision: str | None = None,
        dtype: str = "float32",
        device: str = "cpu",
        batch_size: int = 16,
        gguf_file: str | None = None,
        prefix_reuse: bool = True,
        max_length: int | None = None,
        *,
        suffix_batch_size: int | None = None,
        min_prefix_tokens: int = 16,
        max_group: int = 64,
        local_files_only: bool = True,
        attn_implementation: str | None = None,
        device_map: str | dict | None = None,
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model_name = str(model)
        self.revision = revision
        self.dtype = dtype
        self.device_name = device
        self.batch_size = int(batch_size)
        self.suffix_batch_size = int(suffix_batch_size or 4 * self.batch_size)
        self.gguf_file = gguf_file
        self.prefix_reuse = bool(prefix_reuse)
        self.max_length = max_length
        self.min_prefix_tokens = int(min_prefix_tokens)
        self.max_group = int(max_group)
        self.local_files_only = local_files_only
        self.attn_implementation = attn_implementation
        self.device_map = device_map
        self._model: Any = None
        self._in_memory = False  # built by from_model: nothing to load
        self._tokenizer: Any = None
        self._identity: LLMIdentity | None = None
        self._letter_cache: dict[tuple[str, ...], list[int]] = {}
        self._cache_kwarg: str | None = None
        self._keep_kwarg: bool = False
        #: What the last label_logits call did: prompts, forward calls, tokens run, groups, seconds.
        self.last_stats: dict[str, Any] = {}

    @classmethod
    def from_model(
        cls,
        model: Any,
        tokenizer: Any = None,
        *,
        model_id: str = "in-memory",
        revision: str = "",
        **kwargs: Any,
    ) -> TransformersBackend:
        """A backend around an already built model (and tokenizer; without one only `score_token_ids` works)."""
        import torch

        dtype = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[model.dtype]
        backend = cls(model_id, revision=revision, dtype=dtype, device=str(model.device), **kwargs)
        model.eval()
        backend._model = model
        backend._tokenizer = tokenizer
        backend._in_memory = True
        backend._inspect_model()
        return backend

    # ---------------------------------------------------------------------------------------- loading

    def _source(self) -> str:
        path = Path(self.model_name).expanduser()
        return str(path.resolve()) if path.exists() else self.model_name

    def _resolve_device(self) -> str:
        import torch

        if self.device_name == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device_name

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            if self._in_memory:
                raise RuntimeError("this backend was built from a model without a tokenizer")
            from transformers import AutoTokenizer

            kwargs: dict[str, Any] = {"local_files_only": self.local_files_only}
            if self.revision:
                kwargs["revision"] = self.revision
            if self.gguf_file:
                kwargs["gguf_file"] = self.gguf_file
            self._tokenizer = AutoTokenizer.from_pretrained(self._source(), **kwargs)
        return self._tokenizer

    @property
    def model(self) -> Any:
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM

            kwargs: dict[str, Any] = {
                "local_files_only": self.local_files_only,
                "dtype": getattr(torch, self.dtype),
            }
            if self.revision:
                kwargs["revision"] = self.revision
            if self.gguf_file:
                kwargs["gguf_file"] = self.gguf_file
            if self.attn_implementation:
                kwargs["attn_implementation"] = self.attn_implementation
            if self.device_map is not None:
                kwargs["device_map"] = self.device_map
            model = AutoModelForCausalLM.from_pretrained(self._source(), **kwargs)
            if self.device_map is None:
                model.to(self._resolve_device())
            model.eval()
            self._model = model
            self._inspect_model()
        return self._model

    def _inspect_model(self) -> None:
        params = inspect.signature(self._model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._keep_kwarg = "logits_to_keep" in params

    @property
    def device(self) -> Any:
        return self.model.device

    def _prefix_reuse_supported(self, longest: int) -> bool:
        config = self.model.config
        text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        layer_types = getattr(text, "layer_types", None)
        if layer_types and any(t != "full_attention" for t in layer_types):
            return False
        window = getattr(text, "sliding_window", None)
        if window and getattr(text, "use_sliding_window", True) and longest > window:
            return False
        return True

    # --------------------------------------------------------------------------------------- identity

    def identity(self) -> LLMIdentity:
        if self._identity is None:
            revision = self.revision or ""
            model_id = self.model_name
            path = Path(self.model_name).expanduser()
            if path.is_dir():
                model_id = f"local:{path.resolve().name}"
                revision = revision or _fingerprint_dir(path, self.gguf_file)
            extra: dict[str, Any] = {}
            if self.gguf_file:
                extra["gguf_file"] = self.gguf_file
            template = _chat_template_in_dir(path) if path.is_dir() and not self._in_memory else None
            if template is None:
                tokenizer = self._tokenizer if self._in_memory else self.tokenizer
                template = getattr(tokenizer, "chat_template", None) or ""
            extra["chat_template"] = (
                hashlib.sha256(template.encode()).hexdigest()[:16] if template else "none"
            )
            self._identity = LLMIdentity(
                backend="transformers", model_id=model_id, revision=revision, dtype=self.dtype, extra=extra
            )
        return self._identity

    # ------------------------------------------------------------------------------------ tokenization

    def _has_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def chat_text(self, prompt: str) -> str:
        """The text the model sees for one user message: the chat template with the generation prompt."""
        if not self._has_template():
            return prompt
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of the chat-templated prompts (the template already holds any special tokens)."""
        if not prompts:
            return []
        if self._has_template():
            texts = [self.chat_text(p) for p in prompts]
            ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        else:
            ids = self.tokenizer(list(prompts))["input_ids"]
        limit = self._max_length()
        for k, seq in enumerate(ids):
            if len(seq) > limit:
                raise PromptTooLongError(f"prompt {k} has {len(seq)} tokens, more than max_length={limit}")
        return [list(seq) for seq in ids]

    def _max_length(self) -> int:
        if self.max_length is not None:
            return int(self.max_length)
        config = self.model.config
        text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        return int(getattr(text, "max_position_embeddings", None) or 1 << 30)

    def letter_token_ids(self, letters: Sequence[str] = DEFAULT_LETTERS) -> list[int]:
        """The token id of each letter as the first generated token (after the assistant header).

        Each letter is appended to a chat-templated probe prompt: the tokens of the probe must stay unchanged
        and exactly one token must follow. Otherwise (a template whose end merges with a letter) the letter on
        its own must be one token. Raises `LetterTokenError` when neither holds or two letters share a token.
        """
        key = tuple(letters)
        if key in self._letter_cache:
            return self._letter_cache[key]
        tok = self.tokenizer
        probe = self.chat_text("Answer with a single letter.")
        special = not self._has_template()
        base = tok(probe, add_special_tokens=special)["input_ids"]
        ids = []
        for letter in letters:
            full = tok(probe + letter, add_special_tokens=special)["input_ids"]
            if len(full) == len(base) + 1 and full[: len(base)] == base:
                token = full[-1]
            else:
                alone = tok(letter, add_special_tokens=False)["input_ids"]
                if len(alone) != 1:
                    raise LetterTokenError(
                        f"letter {letter!r} is {len(alone)} tokens for this tokenizer: {alone}"
                    )
                token = alone[0]
            if tok.decode([token]).strip() != letter:
                raise LetterTokenError(
                    f"letter {letter!r} resolved to token {token} = {tok.decode([token])!r}"
                )
            ids.append(int(token))
        if len(set(ids)) != len(ids):
            raise LetterTokenError(f"letters {letters} share token ids {ids}")
        self._letter_cache[key] = ids
        return ids

    def _pad_id(self) -> int:
        tok = self._tokenizer
        for candidate in (
            getattr(tok, "pad_token_id", None),
            getattr(tok, "eos_token_id", None),
            getattr(self.model.config, "pad_token_id", None),
        ):
            if isinstance(candidate, int):
                return candidate
        return 0

    # -------------------------------------------------------------------------------------- forwards

    def _left_pad(self, seqs: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        import torch

        width = max(len(s) for s in seqs)
        pad = self._pad_id()
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            if seq:
                ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
                mask[row, width - len(seq) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _last_logits(self, **inputs: Any) -> Any:
        """Run the model; the float32 logits at the last position of every row (B × V)."""
        if self._keep_kwarg:
            inputs["logits_to_keep"] = 1
        out = self.model(**inputs)
        return out.logits[:, -1, :].float()

    def _forward_plain(self, seqs: Sequence[Sequence[int]]) -> Any:
        ids, mask = self._left_pad(seqs)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return self._last_logits(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)

    def _forward_prefixes(self, prefixes: Sequence[Sequence[int]]) -> tuple[list[tuple[Any, Any]], Any, Any]:
        """Run the prefixes; their per-layer (keys, values), their padding mask and their lengths."""
        import torch
        from transformers import DynamicCache

        ids, mask = self._left_pad(prefixes)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "use_cache": True}
        inputs[self._cache_kwarg] = cache
        self._last_logits(**inputs)
        kv = []
        for layer in cache.layers:
            if type(layer).__name__ != "DynamicLayer" or getattr(layer, "keys", None) is None:
                raise RuntimeError(
                    f"prefix reuse needs full-attention cache layers, got {type(layer).__name__}"
                )
            kv.append((layer.keys, layer.values))
        lengths = torch.tensor([len(p) for p in prefixes], dtype=torch.long, device=self.device)
        return kv, mask, lengths

    def _forward_suffixes(
        self,
        kv: list[tuple[Any, Any]],
        prefix_mask: Any,
        prefix_lens: Any,
        rows: list[int],
        suffixes: list[list[int]],
    ) -> Any:
        """Run the suffixes on copies of their prefixes' cache rows; last-position logits."""
        import torch
        from transformers import DynamicCache

        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        cache = DynamicCache()
        for layer_idx, (keys, values) in enumerate(kv):
            cache.update(keys.index_select(0, index), values.index_select(0, index), layer_idx)
        ids, suffix_mask = self._left_pad(suffixes)
        mask = torch.cat([prefix_mask.index_select(0, index), suffix_mask], dim=1)
        positions = prefix_lens.index_select(0, index)[:, None] + (suffix_mask.cumsum(-1) - 1).clamp(min=0)
        inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "use_cache": True}
        inputs[self._cache_kwarg] = cache
        return self._last_logits(**inputs)

    # ---------------------------------------------------------------------------------- label logits

    def label_logits(
        self, prompts: list[str], letters: tuple[str, ...] = DEFAULT_LETTERS
    ) -> list[LabelScores]:
        """Raw logits of `letters` at the first generated position of each prompt (one forward pass each)."""
        letter_ids = self.letter_token_ids(letters)
        return self.score_token_ids(self.encode(prompts), letter_ids, letters)

    def score_token_ids(
        self,
        seqs: Sequence[Sequence[int]],
        letter_ids: Sequence[int],
        letters: Sequence[str] = DEFAULT_LETTERS,
    ) -> list[LabelScores]:
        """`label_logits` on already tokenized (chat-templated) prompts; works without a tokenizer."""
        import torch

        n = len(seqs)
        if n == 0:
            return []
        if any(len(s) == 0 for s in seqs):
            raise ValueError("empty token sequence")
        model = self.model
        letter_index = torch.tensor(list(letter_ids), dtype=torch.long, device=model.device)
        results: list[LabelScores | None] = [None] * n
        stats = {
            "prompts": n,
            "prompt_tokens": sum(len(s) for s in seqs),
            "forward_calls": 0,
            "tokens_run": 0,
        }
        started = time.perf_counter()

        def store(logits: Any, members: Sequence[int]) -> None:
            picked = logits.index_select(1, letter_index)
            total = torch.logsumexp(logits, dim=-1)  # NaN or inf anywhere in a row shows here
            if not (torch.isfinite(total).all() and torch.isfinite(picked).all()):
                raise FloatingPointError(
                    "non-finite logits: check the padding and the attention implementation"
                )
            mass = torch.exp(torch.logsumexp(picked, dim=-1) - total)
            for row, k in enumerate(members):
                results[k] = LabelScores(
                    scores=[float(v) for v in picked[row].tolist()],
                    kind="logits",
                    letters=tuple(letters),
                    token_ids=[int(t) for t in letter_ids],
                    letter_mass=float(mass[row]),
                    prompt_tokens=len(seqs[k]),
                )

        reuse = self.prefix_reuse and self._prefix_reuse_supported(max(len(s) for s in seqs))
        if reuse:
            groups, singles = plan_prefix_groups(seqs, self.max_group, self.min_prefix_tokens)
        else:
            groups, singles = [], list(range(n))
        stats.update(
            groups=len(groups), grouped_prompts=sum(len(g.members) for g in groups), singles=len(singles)
        )

        with torch.inference_mode():
            singles.sort(key=lambda k: len(seqs[k]))
            for batch in _chunks(singles, self.batch_size):
                store(self._forward_plain([seqs[k] for k in batch]), batch)
                stats["forward_calls"] += 1
                stats["tokens_run"] += sum(len(seqs[k]) for k in batch)
            groups.sort(key=lambda g: g.prefix_len)
            for chunk in _chunks(groups, self.batch_size):
                kv, prefix_mask, prefix_lens = self._forward_prefixes(
                    [seqs[g.members[0]][: g.prefix_len] for g in chunk]
                )
                stats["forward_calls"] += 1
                stats["tokens_run"] += sum(g.prefix_len for g in chunk)
                rows = [(gi, k) for gi, g in enumerate(chunk) for k in g.members]
                rows.sort(key=lambda r: len(seqs[r[1]]) - chunk[r[0]].prefix_len)
                for sub in _chunks(rows, self.suffix_batch_size):
                    suffixes = [list(seqs[k][chunk[gi].prefix_len :]) for gi, k in sub]
                    logits = self._forward_suffixes(
                        kv, prefix_mask, prefix_lens, [gi for gi, _ in sub], suffixes
                    )
                    store(logits, [k for _, k in sub])
                    stats["forward_calls"] += 1
                    stats["tokens_run"] += sum(len(s) for s in suffixes)
                del kv
        stats["seconds"] = time.perf_counter() - started
        self.last_stats = stats
        return results  # type: ignore[return-value]

    def reference_label_logits(
        self,
        prompts: list[str],
        letters: tuple[str, ...] = DEFAULT_LETTERS,
        max_new_tokens: int = 256,
        batch_size: int = 20,
    ) -> list[LabelScores]:
        """The published procedure: greedy ``generate(max_new_tokens, output_scores=True)`` in batches (given
        order, left padding), keeping the step-0 scores. Slow; for tests and benchmarks."""
        import torch

        letter_ids = self.letter_token_ids(letters)
        seqs = self.encode(prompts)
        index = torch.tensor(letter_ids, dtype=torch.long, device=self.device)
        eos = self._eos_ids()
        results = []
        stats = {"prompts": len(seqs), "prompt_tokens": sum(len(s) for s in seqs), "generated_tokens": 0}
        started = time.perf_counter()
        with torch.inference_mode():
            for batch in _chunks(seqs, batch_size):
                ids, mask = self._left_pad(batch)
                out = self.model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    output_scores=True,
                    return_dict_in_generate=True,
                    pad_token_id=self._pad_id(),
                    **({"eos_token_id": sorted(eos)} if eos else {}),
                )
                stats["generated_tokens"] += len(batch) * len(out.scores)
                step0 = out.scores[0].float()
                picked = step0.index_select(1, index)
                mass = torch.exp(torch.logsumexp(picked, dim=-1) - torch.logsumexp(step0, dim=-1))
                for row, seq in enumerate(batch):
                    results.append(
                        LabelScores(
                            scores=[float(v) for v in picked[row].tolist()],
                            kind="logits",
                            letters=tuple(letters),
                            token_ids=list(letter_ids),
                            letter_mass=float(mass[row]),
                            prompt_tokens=len(seq),
                        )
                    )
        stats["seconds"] = time.perf_counter() - started
        self.last_stats = stats
        return results

    # -------------------------------------------------------------------------------------- generate

    def _eos_ids(self) -> set[int]:
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = getattr(self.tokenizer, "eos_token_id", None)
        if eos is None:
            return set()
        return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}

    def generate(self, prompts: list[str], params: GenerationParams) -> list[Generation]:
        """Batched generation (sorted by length, left padding); greedy unless params.temperature > 0.

        ``latency_s`` is the wall time of the batch that produced the answer; ``completion_tokens`` counts the
        generated tokens up to and including the end-of-sequence token; ``finish_reason`` is "stop" when an
        end-of-sequence token ended the answer, "length" when max_new_tokens cut it.
        """
        import torch

        seqs = self.encode(prompts)
        results: list[Generation | None] = [None] * len(seqs)
        order = sorted(range(len(seqs)), key=lambda k: len(seqs[k]))
        eos = self._eos_ids()
        sample = params.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_new_tokens, "do_sample": sample}
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=None)
            if params.seed is not None:
                torch.manual_seed(params.seed)
        if eos:
            kwargs["eos_token_id"] = sorted(eos)
        with torch.inference_mode():
            for batch in _chunks(order, self.batch_size):
                ids, mask = self._left_pad([seqs[k] for k in batch])
                started = time.perf_counter()
                out = self.model.generate(
                    input_ids=ids, attention_mask=mask, pad_token_id=self._pad_id(), **kwargs
                )
                latency = time.perf_counter() - started
                new_tokens = out[:, ids.shape[1] :].tolist()
                for row, k in enumerate(batch):
                    tokens = new_tokens[row]
                    stop = next((t for t, tok in enumerate(tokens) if tok in eos), None)
                    kept = tokens if stop is None else tokens[:stop]
                    results[k] = Generation(
                        text=self.tokenizer.decode(kept, skip_special_tokens=True),
                        prompt_tokens=len(seqs[k]),
                        completion_tokens=len(tokens) if stop is None else stop + 1,
                        latency_s=latency,
                        finish_reason="stop" if stop is not None else "length",
                    )
        return results  # type: ignore[return-value]
