"""Label logits over a prefix tree on the transformers backend: each node's tokens run once, on its parent's
KV cache, level by level with the nodes of one level batched together (across explanation orders and items).

On a CPU every forward call reads all the weights, so few large calls beat many small ones: a level's nodes
(up to `batch_size` rows a call) run together whatever their parents, each row on its parent's cache left-
padded to the longest parent of the batch. The next level is taken in slices of at most `frontier` nodes and
finished depth first, which bounds the caches alive at once. A sequence that ends at a node gets the node's
last-position logits: what one forward pass over the whole sequence gives (the padding is masked and the
positions count real tokens only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hlv_assets.llm.prefix_groups import chunks
from hlv_assets.llm.prefix_tree import TreeNode, build_prefix_tree


@dataclass
class NodeState:
    """A node's cache as one batch row: per-layer (keys, values) of shape 1 x H x T x D, its attention mask
    (1 x T, zeros where padding sits) and its count of real tokens."""

    kv: list[tuple[Any, Any]]
    mask: Any
    length: int


def _cache_layers(cache: Any) -> list[tuple[Any, Any]]:
    kv = []
    for layer in cache.layers:
        if type(layer).__name__ != "DynamicLayer" or getattr(layer, "keys", None) is None:
            raise RuntimeError(f"the prefix tree needs full-attention cache layers, got {type(layer).__name__}")
        kv.append((layer.keys, layer.values))
    return kv


def _stack(parents: Sequence[NodeState]) -> tuple[list[tuple[Any, Any]], Any]:
    """The parents' caches as one batch, each left-padded (zeros, masked) to the longest."""
    import torch

    width = max(p.mask.shape[1] for p in parents)
    if all(p is parents[0] for p in parents):  # siblings: one cache, viewed once per row
        rows = len(parents)
        kv = [(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in parents[0].kv]
        return kv, parents[0].mask.expand(rows, -1)
    mask = torch.zeros((len(parents), width), dtype=parents[0].mask.dtype, device=parents[0].mask.device)
    for row, p in enumerate(parents):
        mask[row, width - p.mask.shape[1]:] = p.mask[0]
    kv = []
    for layer in range(len(parents[0].kv)):
        keys0, values0 = parents[0].kv[layer]
        shape = (len(parents), keys0.shape[1], width, keys0.shape[3])
        keys = keys0.new_zeros(shape)
        values = values0.new_zeros((len(parents), values0.shape[1], width, values0.shape[3]))
        for row, p in enumerate(parents):
            k, v = p.kv[layer]
            keys[row, :, width - k.shape[2]:] = k[0]
            values[row, :, width - v.shape[2]:] = v[0]
        kv.append((keys, values))
    return kv, mask


def _forward(backend: Any, parents: Sequence[NodeState | None], spans: list[list[int]]) -> tuple[Any, list]:
    """Run each span on its parent's cache (all None: from scratch); last-position logits and each row's new
    cache state."""
    import torch
    from transformers import DynamicCache

    ids, span_mask = backend._left_pad(spans)
    cache = DynamicCache()
    offsets = span_mask.sum(-1)
    if parents[0] is None:
        mask, base = span_mask, torch.zeros_like(offsets)
    else:
        kv, parent_mask = _stack(parents)
        for layer_idx, (keys, values) in enumerate(kv):
            cache.update(keys, values, layer_idx)
        mask = torch.cat([parent_mask, span_mask], dim=1)
        base = torch.tensor([p.length for p in parents], dtype=offsets.dtype, device=offsets.device)
    positions = base[:, None] + (span_mask.cumsum(-1) - 1).clamp(min=0)
    inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "use_cache": True}
    inputs[backend._cache_kwarg] = cache
    logits = backend._last_logits(**inputs)
    layers = _cache_layers(cache)
    lengths = (base + offsets).tolist()
    states = [NodeState([(k[r:r + 1], v[r:r + 1]) for k, v in layers], mask[r:r + 1], int(lengths[r]))
              for r in range(len(spans))]
    return logits, states


class TreeScorer:
    """Scores token sequences through their prefix tree with `backend` (a `TransformersBackend`)."""

    def __init__(self, backend: Any, store: Callable[[Any, list[int]], None], stats: dict[str, Any],
                 frontier: int | None = None):
        self.backend = backend
        self.store = store
        self.stats = stats
        self.frontier = int(frontier or 2 * backend.batch_size)

    def run(self, seqs: Sequence[Sequence[int]]) -> None:
        self.seqs = seqs
        root = build_prefix_tree(seqs)
        self._level([(child, None) for child in root.children])

    def _level(self, work: list[tuple[TreeNode, NodeState | None]]) -> None:
        """Run the nodes of `work` (batched), then their children, `frontier` nodes at a time."""
        import torch

        done: list[tuple[TreeNode, NodeState]] = []
        for batch in chunks(work, self.backend.batch_size):
            spans = [list(self.seqs[node.rep][node.start:node.end]) for node, _ in batch]
            logits, states = _forward(self.backend, [parent for _, parent in batch], spans)
            self.stats["forward_calls"] += 1
            self.stats["tokens_run"] += sum(len(s) for s in spans)
            ended = [(row, k) for row, (node, _) in enumerate(batch) for k in node.terminals]
            if ended:
                index = torch.tensor([row for row, _ in ended], dtype=torch.long, device=logits.device)
                self.store(logits.index_select(0, index), [k for _, k in ended])
            done += [(node, state) for (node, _), state in zip(batch, states) if node.children]
        following = [(child, state) for node, state in done for child in node.children]
        del done
        while following:
            part, following = following[:self.frontier], following[self.frontier:]
            self._level(part)
