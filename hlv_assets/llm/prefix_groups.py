"""Prefix grouping for label logits with prefix reuse (pure Python, no torch): which prompts share a long token
prefix, so that the prefix runs once and its KV cache serves every member."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hlv_assets.llm.prefix_tree import common_prefix_len


@dataclass
class PrefixGroup:
    """Prompts (indices into the scored list) that share their first `prefix_len` tokens."""

    prefix_len: int
    members: list[int] = field(default_factory=list)


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
    adjacent = [common_prefix_len(tuples[order[k]], tuples[order[k + 1]]) for k in range(n - 1)]
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


def chunks(items: list, size: int) -> list[list]:
    """`items` in consecutive slices of at most `size`."""
    return [items[k : k + size] for k in range(0, len(items), size)]
