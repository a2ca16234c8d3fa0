"""The prefix tree (radix tree) of a batch of token sequences, pure Python: every distinct prefix once.

All prompts of an item share the chat-template head, the instruction and the item; the 24 explanation orders
share their first explanations; the six option orders of one explanation order share everything but the
option block. As a tree, each shared span is one node: its tokens run once and its KV cache serves all its
children (`hlv_assets.llm.transformers_tree` runs it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


@dataclass
class TreeNode:
    """The tokens `seqs[rep][start:end]`; `terminals`: the sequences that end exactly here."""

    start: int
    end: int
    rep: int = -1
    children: list[TreeNode] = field(default_factory=list)
    terminals: list[int] = field(default_factory=list)

    @property
    def length(self) -> int:
        return self.end - self.start


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix (binary search over slice comparisons, which run in C)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def build_prefix_tree(seqs: Sequence[Sequence[int]]) -> TreeNode:
    """The radix tree of `seqs` under an empty root (start = end = 0). Every non-root node holds at least one
    token; a sequence that is a prefix of another ends at an inner node; duplicates share a node.

    Built from the sorted sequences and their adjacent common prefixes with one stack (the path of the
    previous sequence), in O(total tokens) besides the sort.
    """
    if any(len(s) == 0 for s in seqs):
        raise ValueError("empty token sequence")
    tuples = [tuple(s) for s in seqs]
    root = TreeNode(0, 0)
    path = [root]
    prev: tuple[int, ...] | None = None
    for i in sorted(range(len(tuples)), key=tuples.__getitem__):
        seq = tuples[i]
        shared = 0 if prev is None else common_prefix_len(prev, seq)
        while len(path) > 1 and path[-1].start >= shared:
            path.pop()
        top = path[-1]
        if top.end > shared:  # the new sequence leaves top's span part-way: split top at `shared`
            rest = TreeNode(shared, top.end, top.rep, top.children, top.terminals)
            top.end, top.children, top.terminals = shared, [rest], []
        if shared == len(seq):  # a duplicate of the previous sequence
            top.terminals.append(i)
        else:
            leaf = TreeNode(shared, len(seq), i, terminals=[i])
            top.children.append(leaf)
            path.append(leaf)
        prev = seq
    return root


def walk(node: TreeNode) -> Iterator[TreeNode]:
    """Every node below `node` (not `node` itself), depth first."""
    for child in node.children:
        yield child
        yield from walk(child)


def tree_tokens(root: TreeNode) -> int:
    """Tokens the tree runs: each node's span once."""
    return sum(node.length for node in walk(root))
