"""The model side of the transformers backend: loading a local (or locally cached, or GGUF) causal LM and its
tokenizer lazily, the identity that keys the call cache (content fingerprint of a local checkpoint, chat
template hash), chat-templated tokenization, the option letters' token ids, and left padding."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hlv_assets.llm.base import LLMIdentity

DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_LETTERS = ("A", "B", "C")
#: Only this much of each weight file's start and end enters the fingerprint of a local checkpoint.
_FINGERPRINT_BYTES = 1 << 20


class LetterTokenError(ValueError):
    """An option letter that is not a single token for this tokenizer."""


class PromptTooLongError(ValueError):
    """A prompt longer than the backend's max_length (never truncated silently)."""


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


class TransformersModel:
    """A causal LM and its tokenizer, loaded on first use; the base of `TransformersBackend` (see there for
    the arguments)."""

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
        prefix_tree: bool = False,
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
        self.prefix_tree = bool(prefix_tree)
        #: prompts per call of the call cache (`CachedLLM.chunk_size`): a tree shares prefixes within a call
        self.chunk_prompts = 1024 if self.prefix_tree else 64
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
    ) -> TransformersModel:
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

    def _eos_ids(self) -> set[int]:
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = getattr(self.tokenizer, "eos_token_id", None)
        if eos is None:
            return set()
        return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}
