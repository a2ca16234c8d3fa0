"""Label logits over a prefix tree on the transformers backend: each node's tokens run once, on its parent's
KV cache, level by level with the nodes of one level batched together (across explanation orders and items).

On a CPU every forward call reads all the weights, so few large calls beat many small ones: a level's nodes
(up to `batch_size` rows a call) run together whatever their parents, each row on its parent's cache left-
padded to the widest parent batch. The next level is taken in slices of at most `frontier` nodes and
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
class BatchCache:
    """The cache of one forward call: per-layer (keys, values) of shape B x H x T x D, the attention mask
    (B x T, zeros where padding sits) and each row's count of real tokens."""

    kv: list[tuple[Any, Any]]
    mask: Any
    lengths: list[int]


@dataclass
class NodeState:
    """A node's cache: row `row` of a batch's cache."""

    cache: BatchCache
    row: int

    @property
    def length(self) -> int:
        return self.cache.lengths[self.row]


def _cache_layers(cache: Any) -> list[tuple[Any, Any]]:
    kv = []
    for layer in cache.layers:
        if type(layer).__name__ != "DynamicLayer" or getattr(layer, "keys", None) is None:
            raise RuntimeError(f"the prefix tree needs full-attention cache layers, got {type(layer).__name__}")
        kv.append((layer.keys, layer.values))
    return kv


def _stack(parents: Sequence[NodeState]) -> tuple[list[tuple[Any, Any]], Any]:
    """The parents' caches as one batch (row i = parents[i]), each batch's rows picked with one index_select
    per layer and left-padded (zeros, masked) to the widest."""
    import torch
    import torch.nn.functional as F

    first = parents[0]
    if all(p.cache is first.cache and p.row == first.row for p in parents):  # siblings: views, no copy
        rows = len(parents)
        one = slice(first.row, first.row + 1)
        kv = [(k[one].expand(rows, -1, -1, -1), v[one].expand(rows, -1, -1, -1)) for k, v in first.cache.kv]
        return kv, first.cache.mask[first.row:first.row + 1].expand(rows, -1)
    groups: dict[int, tuple[BatchCache, list[int], list[int]]] = {}
    for position, p in enumerate(parents):
        groups.setdefault(id(p.cache), (p.cache, [], []))
        groups[id(p.cache)][1].append(position)
        groups[id(p.cache)][2].append(p.row)
    width = max(cache.mask.shape[1] for cache, _, _ in groups.values())
    layers: list[list[tuple[Any, Any]]] = [[] for _ in first.cache.kv]
    masks, order = [], []
    for cache, positions, rows in groups.values():
        index = torch.tensor(rows, dtype=torch.long, device=cache.mask.device)
        pad = width - cache.mask.shape[1]
        for layer, (k, v) in enumerate(cache.kv):
            k, v = k.index_select(0, index), v.index_select(0, index)
            layers[layer].append((F.pad(k, (0, 0, pad, 0)), F.pad(v, (0, 0, pad, 0))) if pad else (k, v))
        mask = cache.mask.index_select(0, index)
        masks.append(F.pad(mask, (pad, 0)) if pad else mask)
        order += positions
    kv = [(torch.cat([k for k, _ in parts]), torch.cat([v for _, v in parts])) for parts in layers]
    mask = torch.cat(masks)
    if order != sorted(order):
        inverse = torch.tensor(sorted(range(len(order)), key=order.__getitem__), device=mask.device)
        kv = [(k.index_select(0, inverse), v.index_select(0, inverse)) for k, v in kv]
        mask = mask.index_select(0, inverse)
    return kv, mask


def _forward(backend: Any, parents: Sequence[NodeState | None], spans: list[list[int]]) -> tuple[Any, BatchCache]:
    """Run each span on its parent's cache (all None: from scratch); last-position logits and the batch's new
    cache."""
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
    return logits, BatchCache(_cache_layers(cache), mask, [int(n) for n in (base + offsets).tolist()])


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
        work = sorted(work, key=lambda item: item[0].length)  # similar spans together: little padding
        for batch in chunks(work, self.backend.batch_size):
            spans = [list(self.seqs[node.rep][node.start:node.end]) for node, _ in batch]
            logits, cache = _forward(self.backend, [parent for _, parent in batch], spans)
            states = [NodeState(cache, row) for row in range(len(batch))]
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
