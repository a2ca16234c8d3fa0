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

Modules: `transformers_model` (loading, identity, tokenization, letter ids, padding), `transformers_scoring`
(label logits with prefix reuse, the reference procedure), `prefix_groups` (the grouping plan); generation is here.
"""

from __future__ import annotations

import time
from typing import Any

from hlv_assets.llm.base import GENERATE, LABEL_LOGITS, Generation, GenerationParams
from hlv_assets.llm.prefix_groups import PrefixGroup, chunks, plan_prefix_groups
from hlv_assets.llm.transformers_model import (
    DEFAULT_LETTERS,
    DTYPES,
    LetterTokenError,
    PromptTooLongError,
    TransformersModel,
)
from hlv_assets.llm.transformers_scoring import LabelLogitsMixin

__all__ = [
    "DEFAULT_LETTERS",
    "DTYPES",
    "LetterTokenError",
    "PrefixGroup",
    "PromptTooLongError",
    "TransformersBackend",
    "plan_prefix_groups",
]


class TransformersBackend(LabelLogitsMixin, TransformersModel):
    """generate and label_logits on a local (or locally cached) causal LM; see the module docstring.

    ``batch_size`` bounds the rows of every prefill forward (plain prompts and shared prefixes);
    ``suffix_batch_size`` (default 4 × batch_size) bounds the rows of the suffix forwards of prefix reuse, which
    hold only a few tokens each. ``max_length`` (default: the model's ``max_position_embeddings``) refuses longer
    prompts instead of truncating them.
    """

    capabilities = frozenset({GENERATE, LABEL_LOGITS})

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
            for batch in chunks(order, self.batch_size):
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
