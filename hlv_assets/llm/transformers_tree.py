"""Label logits over a prefix tree on the transformers backend: every distinct prefix of the prompts runs once.

The tree is cut into *packed rows*. A row runs on the KV cache of one node (its *base*: the whole prefix up to
that node) and holds several of the base's descendants side by side: each node's tokens keep their own
positions (`node.start + offset`, what one forward pass over the whole prompt gives), and a tree-shaped
attention mask lets a token see the base, its ancestors in the row and the earlier tokens of its own node,
never a sibling. So the cache of a node is never copied per child: siblings share one row.

A child of the base whose whole subtree fits in `row_tokens` goes into a row whole (nothing below it runs
again); a larger one runs alone in the row and becomes the base of later rows: its prefix (the base's cache
plus its ancestors' and its own tokens in the row) is gathered once into a cache of its own. Rows of similar
sizes run together, up to `batch_size` rows and `batch_tokens` tokens a forward call, whatever their base,
across items; rows are taken `frontier` at a time and their descendants finished first (depth first), which
bounds the caches alive at once whatever the number of items. A sequence that ends in a node gets the logits
of the node's last token (the LM head runs on those positions only).

`TreeScorer.run` is what `TransformersBackend.score_token_ids` calls with ``prefix_tree=True``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hlv_assets.llm.prefix_tree import TreeNode, build_prefix_tree


@dataclass
class Base:
    """A node's whole prefix as a cache: per layer (keys, values) of shape H × length × D."""

    kv: list[tuple[Any, Any]]
    length: int


@dataclass
class Row:
    """One packed row on `base` (None: the empty prefix): `nodes` in depth-first order (each after its
    ancestors), `up[i]` the row index of node i's parent (-1: the base), `expand` the row indices of the
    nodes whose children run in later rows."""

    base: Base | None
    nodes: list[TreeNode] = field(default_factory=list)
    up: list[int] = field(default_factory=list)
    expand: list[int] = field(default_factory=list)
    tokens: int = 0

    def add(self, node: TreeNode, parent: int) -> None:
        self.nodes.append(node)
        self.up.append(parent)
        self.tokens += node.length

    @property
    def base_length(self) -> int:
        return 0 if self.base is None else self.base.length


def subtree_sizes(root: TreeNode) -> dict[int, int]:
    """Tokens of every node's subtree (the node's span and all below it), keyed by id(node)."""
    sizes: dict[int, int] = {}

    def visit(node: TreeNode) -> int:
        sizes[id(node)] = node.length + sum(visit(child) for child in node.children)
        return sizes[id(node)]

    visit(root)
    return sizes


def _add_subtree(row: Row, node: TreeNode, parent: int) -> None:
    """Append `node` and everything below it to `row`, depth first."""
    index = len(row.nodes)
    row.add(node, parent)
    for child in node.children:
        _add_subtree(row, child, index)


def plan_rows(base_node: TreeNode, base: Base | None, sizes: dict[int, int], row_tokens: int) -> list[Row]:
    """The rows that run `base_node`'s children on `base`: whole small subtrees packed up to `row_tokens`
    tokens a row; a child with a larger subtree alone (its span only), to be expanded later."""
    rows: list[Row] = []
    row = Row(base)
    for child in sorted(base_node.children, key=lambda c: sizes[id(c)]):
        whole = sizes[id(child)] <= row_tokens
        adding = sizes[id(child)] if whole else child.length
        if row.nodes and row.tokens + adding > row_tokens:
            rows.append(row)
            row = Row(base)
        if whole:
            _add_subtree(row, child, -1)
        else:
            row.expand.append(len(row.nodes))
            row.add(child, -1)
    if row.nodes:
        rows.append(row)
    return rows


def _batches(rows: list[Row], max_rows: int, max_tokens: int, max_padding: float = 0.1) -> Iterator[list[Row]]:
    """Consecutive rows (sorted by size beforehand) in batches of at most `max_rows` rows whose padded size
    (rows × widest row) stays under `max_tokens` and exceeds their real tokens by at most `max_padding` (a single
    row always runs)."""
    batch: list[Row] = []
    real = 0
    for row in rows:
        width = max([row.tokens] + [r.tokens for r in batch[-1:]])
        padded = width * (len(batch) + 1)
        if batch and (len(batch) >= max_rows or padded > max_tokens or padded > (1 + max_padding) * (real + row.tokens)):
            yield batch
            batch, real = [], 0
        batch.append(row)
        real += row.tokens
    if batch:
        yield batch


class TreeScorer:
    """Scores token sequences through their prefix tree with `backend` (a `TransformersBackend`)."""

    def __init__(self, backend: Any, store: Callable[[Any, list[int]], None], stats: dict[str, Any],
                 *, row_tokens: int = 160, batch_tokens: int = 4096, frontier: int = 32):
        self.backend = backend
        self.store = store
        self.stats = stats
        self.row_tokens = int(row_tokens)
        self.batch_tokens = int(batch_tokens)
        self.frontier = int(frontier)

    def run(self, seqs: Sequence[Sequence[int]]) -> None:
        self.seqs = seqs
        root = build_prefix_tree(seqs)
        self.sizes = subtree_sizes(root)
        self._drain(plan_rows(root, None, self.sizes, self.row_tokens))

    def _drain(self, rows: list[Row]) -> None:
        """Run `rows` `frontier` at a time, each slice's descendants before the next slice."""
        rows.sort(key=lambda r: (r.tokens, r.base_length))
        for start in range(0, len(rows), self.frontier):
            following: list[Row] = []
            part = rows[start:start + self.frontier]
            for batch in _batches(part, self.backend.batch_size, self.batch_tokens):
                following += self._forward(batch)
            del part
            if following:
                self._drain(following)

    def _forward(self, batch: list[Row]) -> list[Row]:
        """Run one batch of rows; store the logits of the sequences ending in them; the rows that follow."""
        import torch
        from transformers import DynamicCache

        backend = self.backend
        inputs, layout = _inputs(backend, self.seqs, batch)
        cache = DynamicCache()
        width = max(row.base_length for row in batch)
        if width:
            for layer, (keys, values) in enumerate(_stack_bases(batch, width)):
                cache.update(keys, values, layer)
        inputs[backend._cache_kwarg] = cache
        ends = [(r, offset, k) for r, row_ends in enumerate(layout.ends) for offset, k in row_ends]
        logits = _end_logits(backend, inputs, [(r, offset) for r, offset, _ in ends])
        self.stats["forward_calls"] += 1
        self.stats["tokens_run"] += sum(row.tokens for row in batch)
        if ends:
            self.store(logits, [k for _, _, k in ends])
        del logits
        kv = _cache_layers(cache)
        following = []
        for r, row in enumerate(batch):
            for i in row.expand:
                index = torch.tensor(layout.prefix_index(r, i, width), dtype=torch.long, device=backend.device)
                node = row.nodes[i]
                base = Base([(k[r].index_select(1, index), v[r].index_select(1, index)) for k, v in kv], node.end)
                following += plan_rows(node, base, self.sizes, self.row_tokens)
        return following


#: model types whose logits are exactly `lm_head(last hidden state)` (no soft-capping or scaling): for them the
#: LM head runs on the ends only; other models run it on every column holding an end (`logits_to_keep`)
PLAIN_HEAD_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


def _end_logits(backend: Any, inputs: dict[str, Any], ends: list[tuple[int, int]]) -> Any:
    """Run the model on `inputs`; the float32 logits at each (row, column) of `ends` (N × V)."""
    import torch

    model, device = backend.model, backend.device
    rows = torch.tensor([r for r, _ in ends], dtype=torch.long, device=device)
    if getattr(model.config, "model_type", None) in PLAIN_HEAD_TYPES and hasattr(model, "lm_head"):
        hidden = model.base_model(**inputs).last_hidden_state
        cols = torch.tensor([c for _, c in ends], dtype=torch.long, device=device)
        return model.lm_head(hidden[rows, cols]).float()
    columns = sorted({c for _, c in ends}) or [0]
    if backend._keep_kwarg:
        inputs["logits_to_keep"] = torch.tensor(columns, dtype=torch.long, device=device)
        at = {c: i for i, c in enumerate(columns)}
    else:
        at = {c: c for c in columns}
    logits = model(**inputs).logits
    cols = torch.tensor([at[c] for _, c in ends], dtype=torch.long, device=device)
    return logits[rows, cols].float()


@dataclass
class Layout:
    """Where each row's nodes sit: `spans[r][i]` = (first, last + 1) of node i in row r's tokens; `ends[r]` =
    (column of the last token, sequence index) of every sequence ending in row r."""

    rows: list[Row]
    spans: list[list[tuple[int, int]]]
    ends: list[list[tuple[int, int]]]

    def prefix_index(self, r: int, i: int, width: int) -> list[int]:
        """Cache columns of node i's whole prefix in row r (the base left-padded to `width`, then the row)."""
        row = self.rows[r]
        chain = []
        while i >= 0:
            chain.append(i)
            i = row.up[i]
        index = list(range(width - row.base_length, width))
        for j in reversed(chain):
            first, last = self.spans[r][j]
            index += range(width + first, width + last)
        return index


def _inputs(backend: Any, seqs: Sequence[Sequence[int]], batch: list[Row]) -> tuple[dict[str, Any], Layout]:
    """Token ids, positions and the tree-shaped 4D attention mask of a batch of packed rows (bases left-padded
    to the widest, rows right-padded; padding columns are never attended, padding queries see themselves)."""
    import torch

    device = backend.device
    dtype = backend.model.dtype
    width = max(row.base_length for row in batch)
    length = max(row.tokens for row in batch)
    ids = torch.full((len(batch), length), backend._pad_id(), dtype=torch.long)
    positions = torch.zeros((len(batch), length), dtype=torch.long)
    allowed = torch.zeros((len(batch), length, width + length), dtype=torch.bool)
    spans, ends = [], []
    for r, row in enumerate(batch):
        row_spans, row_ends, owner = [], [], []
        first = 0
        for i, node in enumerate(row.nodes):
            last = first + node.length
            ids[r, first:last] = torch.tensor(seqs[node.rep][node.start:node.end], dtype=torch.long)
            positions[r, first:last] = torch.arange(node.start, node.end)
            row_spans.append((first, last))
            row_ends += [(last - 1, k) for k in node.terminals]
            owner += [i] * node.length
            first = last
        allowed[r, :, width - row.base_length:width] = True
        ancestors = torch.zeros((len(row.nodes), len(row.nodes)), dtype=torch.bool)
        for i, parent in enumerate(row.up):
            ancestors[i, i] = True
            if parent >= 0:
                ancestors[i] |= ancestors[parent]
        node_of = torch.tensor(owner, dtype=torch.long)
        causal = torch.ones((first, first), dtype=torch.bool).tril()  # within a node; ancestors come first
        allowed[r, :first, width:width + first] = ancestors[node_of][:, node_of] & causal
        pad = torch.arange(first, length)
        allowed[r, pad, width + pad] = True
        spans.append(row_spans)
        ends.append(row_ends)
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
    inputs = {"input_ids": ids.to(device), "position_ids": positions.to(device),
              "attention_mask": mask[:, None].to(device), "use_cache": True}
    return inputs, Layout(batch, spans, ends)


def _stack_bases(batch: list[Row], width: int) -> list[tuple[Any, Any]]:
    """The rows' base caches as one batch per layer (B × H × width × D), left-padded with zeros."""
    template = next(row.base for row in batch if row.base is not None)
    layers = []
    for layer, (k0, v0) in enumerate(template.kv):
        keys = k0.new_zeros((len(batch), k0.shape[0], width, k0.shape[2]))
        values = v0.new_zeros((len(batch), v0.shape[0], width, v0.shape[2]))
        for r, row in enumerate(batch):
            if row.base is not None:
                k, v = row.base.kv[layer]
                keys[r, :, width - row.base.length:] = k
                values[r, :, width - row.base.length:] = v
        layers.append((keys, values))
    return layers


def _cache_layers(cache: Any) -> list[tuple[Any, Any]]:
    kv = []
    for layer in cache.layers:
        if type(layer).__name__ != "DynamicLayer" or getattr(layer, "keys", None) is None:
            raise RuntimeError(f"the prefix tree needs full-attention cache layers, got {type(layer).__name__}")
        kv.append((layer.keys, layer.values))
    return kv
