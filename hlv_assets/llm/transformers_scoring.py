"""Label logits on the transformers backend: one forward pass per prompt reading the option letters' logits at
the first generated position, with prefix reuse (a shared prefix runs once, its KV cache is copied to the
group's rows), and the published generate-based reference procedure."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from hlv_assets.llm.base import LabelScores
from hlv_assets.llm.prefix_groups import PrefixGroup, chunks, plan_prefix_groups
from hlv_assets.llm.transformers_model import DEFAULT_LETTERS
from hlv_assets.llm.transformers_tree import TreeScorer


def _scores(logits: Any, letter_index: Any, letter_ids: Sequence[int], letters: Sequence[str],
            lengths: Sequence[int]) -> list[LabelScores]:
    """LabelScores of each row of `logits` (B × V): the letters' logits and the softmax mass they hold."""
    import torch

    picked = logits.index_select(1, letter_index)
    total = torch.logsumexp(logits, dim=-1)  # NaN or inf anywhere in a row shows here
    if not (torch.isfinite(total).all() and torch.isfinite(picked).all()):
        raise FloatingPointError(
            "non-finite logits: check the padding and the attention implementation"
        )
    mass = torch.exp(torch.logsumexp(picked, dim=-1) - total)
    return [
        LabelScores(
            scores=[float(v) for v in picked[row].tolist()],
            kind="logits",
            letters=tuple(letters),
            token_ids=[int(t) for t in letter_ids],
            letter_mass=float(mass[row]),
            prompt_tokens=length,
        )
        for row, length in enumerate(lengths)
    ]


class LabelLogitsMixin:
    """`label_logits`, `score_token_ids` and `reference_label_logits` of `TransformersBackend` (which provides
    the model, the tokenizer, padding and the batch sizes)."""

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
            scores = _scores(logits, letter_index, letter_ids, letters, [len(seqs[k]) for k in members])
            for k, score in zip(members, scores, strict=True):
                results[k] = score

        reuse = self.prefix_reuse and self._prefix_reuse_supported(max(len(s) for s in seqs))
        if reuse and self.prefix_tree:  # opt-in: every distinct prefix once, level by level
            stats.update(mode="tree")
            with torch.inference_mode():
                TreeScorer(self, store, stats).run(seqs)
            stats["seconds"] = time.perf_counter() - started
            self.last_stats = stats
            return results  # type: ignore[return-value]
        if reuse:
            groups, singles = plan_prefix_groups(seqs, self.max_group, self.min_prefix_tokens)
        else:
            groups, singles = [], list(range(n))
        stats.update(
            groups=len(groups), grouped_prompts=sum(len(g.members) for g in groups), singles=len(singles)
        )

        with torch.inference_mode():
            singles.sort(key=lambda k: len(seqs[k]))
            for batch in chunks(singles, self.batch_size):
                store(self._forward_plain([seqs[k] for k in batch]), batch)
                stats["forward_calls"] += 1
                stats["tokens_run"] += sum(len(seqs[k]) for k in batch)
            groups.sort(key=lambda g: g.prefix_len)
            for chunk in chunks(groups, self.batch_size):
                self._score_group_chunk(seqs, chunk, store, stats)
        stats["seconds"] = time.perf_counter() - started
        self.last_stats = stats
        return results  # type: ignore[return-value]

    def _score_group_chunk(self, seqs: Sequence[Sequence[int]], chunk: list[PrefixGroup], store: Any,
                           stats: dict[str, Any]) -> None:
        """Run a chunk of groups' prefixes once, then their members' suffixes on copies of the prefix cache."""
        kv, prefix_mask, prefix_lens = self._forward_prefixes(
            [seqs[g.members[0]][: g.prefix_len] for g in chunk]
        )
        stats["forward_calls"] += 1
        stats["tokens_run"] += sum(g.prefix_len for g in chunk)
        rows = [(gi, k) for gi, g in enumerate(chunk) for k in g.members]
        rows.sort(key=lambda r: len(seqs[r[1]]) - chunk[r[0]].prefix_len)
        for sub in chunks(rows, self.suffix_batch_size):
            suffixes = [list(seqs[k][chunk[gi].prefix_len :]) for gi, k in sub]
            logits = self._forward_suffixes(
                kv, prefix_mask, prefix_lens, [gi for gi, _ in sub], suffixes
            )
            store(logits, [k for _, k in sub])
            stats["forward_calls"] += 1
            stats["tokens_run"] += sum(len(s) for s in suffixes)
        del kv

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
            for batch in chunks(seqs, batch_size):
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
