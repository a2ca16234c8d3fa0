"""Gradual replacement by model / noise explanations: r = 0 human, r = 4 model, nested slots, noise from elsewhere."""

from __future__ import annotations

import pytest

from hlv_assets.lib import replacement as R
from hlv_assets.lib.released import read_items, read_released_selection


@pytest.fixture(scope="module")
def human(data_dir):
    return [[tuple(c) for c in it["comments"]] for it in read_items(data_dir)]


@pytest.fixture(scope="module")
def model(data_dir):
    return [row["explanations"] for row in read_released_selection(data_dir, "llama3", "varierr-lg-first")]


@pytest.fixture(scope="module")
def sets(human, model):
    return R.replacement_sets(human, model, seed=7)


def test_r0_is_human_and_r4_is_model(sets, human, model):
    assert len(human) == len(model) == 341
    assert sets.sets[("model", 0)] == human
    assert sets.sets[("noise", 0)] == human
    assert sets.sets[("model", 4)] == [list(m) for m in model]
    assert sets.sets[("noise", 4)] == sets.noise


def test_replaced_slots_are_nested_and_counted(sets, human, model):
    for kind in R.KINDS:
        for k, h in enumerate(human):
            previous: set[int] = set()
            for r in range(5):
                expl = sets.sets[(kind, r)][k]
                assert [lab for _, lab in expl] == [lab for _, lab in h]  # labels per slot never change
                replaced = sets.replaced_slots(k, r)
                assert len(replaced) == r and previous <= replaced
                source = model[k] if kind == "model" else sets.noise[k]
                for j in range(4):
                    assert expl[j] == (tuple(source[j]) if j in replaced else h[j])
                previous = replaced


def test_noise_comes_from_other_items_with_the_slot_label(sets, human):
    for k, (noise, src) in enumerate(zip(sets.noise, sets.noise_sources, strict=True)):
        texts = [t for t, _ in noise]
        assert len(set(texts)) == len(texts)
        for (text, label), (pid, j) in zip(noise, src, strict=True):
            assert pid != k
            assert human[pid][j] == (text, label)  # same label letter drawn (noise_same_label=True)
    mixed = R.replacement_sets(
        human, kinds=("noise",), seed=7, noise_same_label=False, noise_keep_slot_label=False
    )
    drawn = [human[pid][j][1] for src in mixed.noise_sources for pid, j in src]
    slot_labels = [lab for h in human for _, lab in h]
    assert any(a != b for a, b in zip(drawn, slot_labels, strict=True))  # other labels drawn when allowed
    assert [lab for n in mixed.noise for _, lab in n] == drawn  # and the source letter kept


def test_seeded_deterministic_and_subset_stable(sets, human, model):
    again = R.replacement_sets(human, model, seed=7)
    assert again.sets == sets.sets and again.orders == sets.orders
    other = R.replacement_sets(human, model, seed=8)
    assert other.orders != sets.orders and other.noise != sets.noise
    sub_items = [5, 17, 200]
    sub = R.replacement_sets(
        [human[i] for i in sub_items],
        [model[i] for i in sub_items],
        seed=7,
        items=sub_items,
        noise_pool=human,
    )
    assert sub.orders == [sets.orders[i] for i in sub_items]
    assert sub.noise == [sets.noise[i] for i in sub_items]
    for r in range(5):
        assert sub.sets[("model", r)] == [sets.sets[("model", r)][i] for i in sub_items]
    assert sorted(sets.orders[0]) == [0, 1, 2, 3]
    assert len({tuple(o) for o in sets.orders}) > 1  # per item
    assert R.replacement_orders([4, 4], order="sequential") == [[0, 1, 2, 3], [0, 1, 2, 3]]
    shared = R.replacement_orders([4, 4, 4], order="shared", seed=3)
    assert shared[0] == shared[1] == shared[2]


def test_misaligned_model_sets_are_refused(human, model):
    bad = [list(m) for m in model[:2]]
    bad[1][2] = (bad[1][2][0], {"e": "n", "n": "c", "c": "e"}[bad[1][2][1]])
    with pytest.raises(ValueError, match="item 1 slot 2"):
        R.replacement_sets(human[:2], bad)
    with pytest.raises(ValueError, match="needs model_sets"):
        R.replacement_sets(human[:2])
    with pytest.raises(ValueError):
        R.replace(human[:1], model[:1], [[0, 1, 2, 3]], 5)
