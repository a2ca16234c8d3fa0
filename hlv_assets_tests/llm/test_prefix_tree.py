"""The prefix tree: its shape on hand-made sequences, and label logits through it equal one forward pass per
prompt on the full 24-order grid (tiny random Llama with the SmolLM2 tokenizer)."""

from __future__ import annotations

import random

import pytest

from hlv_assets.lib import judgments as J
from hlv_assets.llm.prefix_tree import build_prefix_tree, tree_tokens, walk
from hlv_assets_tests.llm.test_transformers_backend import TOL, _items, _max_gap


def _distinct_prefixes(seqs) -> int:
    return len({tuple(s[:k]) for s in seqs for k in range(1, len(s) + 1)})


def test_tree_shape_on_hand_made_sequences():
    seqs = [[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9], [1, 2, 3, 4], [1, 2, 3], [7]]
    root = build_prefix_tree(seqs)
    spans = sorted((n.start, n.end, sorted(n.terminals)) for n in walk(root))
    # [1,2] shared; [3] ends seq 4 and branches into [4] (seqs 0 and its duplicate 3) and [5]; [9]; [7]
    assert spans == [(0, 1, [5]), (0, 2, []), (2, 3, [2]), (2, 3, [4]), (3, 4, [0, 3]), (3, 4, [1])]
    assert tree_tokens(root) == _distinct_prefixes(seqs) == 7
    with pytest.raises(ValueError, match="empty"):
        build_prefix_tree([[1], []])


def test_tree_runs_each_distinct_prefix_once_on_random_sequences():
    rng = random.Random(3)
    for _ in range(20):
        seqs = [[rng.randrange(4) for _ in range(rng.randrange(1, 9))] for _ in range(rng.randrange(1, 40))]
        root = build_prefix_tree(seqs)
        assert tree_tokens(root) == _distinct_prefixes(seqs)
        ends = sorted(k for node in walk(root) for k in node.terminals)
        assert ends == list(range(len(seqs)))  # every sequence ends at exactly one node
        for node in walk(root):
            assert node.end > node.start
            for k in node.terminals:
                assert len(seqs[k]) == node.end


def _full_grid(n_items: int) -> list[J.JudgmentPrompt]:
    grid = []
    for i, item in enumerate(_items(n_items)):
        grid += J.prompt_grid(item["premise"], item["hypothesis"], item=f"plain-{i}")
        grid += J.prompt_grid(item["premise"], item["hypothesis"], item["comments"], item=i, orders="all")
    return grid


@pytest.mark.parametrize("batch_size", [5, 32])
def test_tree_equals_one_forward_per_prompt_on_the_full_grid(tiny_llama_backend, batch_size):
    grid = _full_grid(2)  # 2 items x (6 plain + 24 orders x 6 option orders) = 300 prompts
    prompts = [p.prompt for p in grid]
    plain = tiny_llama_backend(prefix_reuse=False, batch_size=32)
    expected = plain.label_logits(prompts)
    groups = tiny_llama_backend(batch_size=32)
    groups.label_logits(prompts)
    tree = tiny_llama_backend(prefix_tree=True, batch_size=batch_size)
    got = tree.label_logits(prompts)
    assert tree.last_stats["mode"] == "tree"
    assert _max_gap(got, expected) <= TOL
    # the tree runs every distinct token prefix once: fewer tokens than one-level reuse
    assert tree.last_stats["tokens_run"] == tree_tokens(build_prefix_tree(tree.encode(prompts)))
    assert tree.last_stats["tokens_run"] * 1.5 <= groups.last_stats["tokens_run"]
    for conversion in ("softmax",):  # random tiny models give negative logits: normalize is refused
        a = J.mjd_from_scores(J.records_from_scores(grid, got), conversion)
        b = J.mjd_from_scores(J.records_from_scores(grid, expected), conversion)
        assert max(abs(u - v) for k in a for u, v in zip(a[k], b[k], strict=True)) <= TOL


def test_tree_on_a_model_whose_head_is_not_plain_runs_the_model_head(tiny_llama_backend, monkeypatch):
    """Models outside PLAIN_HEAD_TYPES (soft-capped or scaled logits) get the model's own head on the columns
    holding an end (`logits_to_keep`): the same numbers."""
    import hlv_assets.llm.transformers_tree as T

    prompts = [p.prompt for p in _full_grid(1)]
    expected = tiny_llama_backend(prefix_reuse=False, batch_size=32).label_logits(prompts)
    monkeypatch.setattr(T, "PLAIN_HEAD_TYPES", frozenset())
    got = tiny_llama_backend(prefix_tree=True, batch_size=8).label_logits(prompts)
    assert _max_gap(got, expected) <= TOL


def test_packed_rows_hold_small_subtrees_whole_and_expand_large_children():
    from hlv_assets.llm.transformers_tree import plan_rows, subtree_sizes

    # root -> [1,2,3] (a 3-token head) -> two children: a 2-token leaf and a 6-token chain with two leaves
    seqs = [[1, 2, 3, 4, 5], [1, 2, 3, 6, 7, 8, 9, 10, 11], [1, 2, 3, 6, 7, 8, 9, 12]]
    root = build_prefix_tree(seqs)
    sizes = subtree_sizes(root)
    assert sizes[id(root)] == tree_tokens(root) == 3 + 2 + 4 + 2 + 1
    head = root.children[0]
    rows = plan_rows(head, None, sizes, row_tokens=4)
    # the 2-token leaf fits whole; the 7-token subtree does not: its own span runs, to be expanded later
    whole = [r for r in rows if not r.expand]
    expanded = [r for r in rows if r.expand]
    assert [n.length for r in whole for n in r.nodes] == [2]
    assert len(expanded) == 1 and [n.length for n in expanded[0].nodes] == [4]
    rows = plan_rows(head, None, sizes, row_tokens=16)  # everything fits: one row, depth first, parents first
    assert len(rows) == 1 and not rows[0].expand
    assert [n.length for n in rows[0].nodes] == [2, 4, 2, 1] and rows[0].up == [-1, -1, 1, 1]
