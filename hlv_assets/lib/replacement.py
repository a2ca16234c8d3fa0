"""Gradual replacement of human explanations by model or noise explanations (SPEC §6, our reading).

For every item, r = 0..4 of its 4 human explanations (slots) are replaced:

* ``kind="model"``: slot j takes the model explanation of the same label and slot, i.e. slot j of a
  released VariErr label-guided set (whose label sequence equals the human one; checked). r = 4 is that set.
* ``kind="noise"``: slot j takes a *noise* explanation: the text of an explanation of **another** item, drawn
  with a seeded generator from a pool (default: the human explanations of all items). With
  ``noise_same_label=True`` (default) only pool explanations of the slot's label are drawn, otherwise any;
  the pair keeps the slot's label letter (``noise_keep_slot_label=True``, so the label sequence the LLM sees
  never changes with r) or takes the source's (False). Within an item the noise texts are distinct when
  the pool allows.

Which slots: each item has a replacement *order*, a permutation of its slots; at r the first r slots of the
order are replaced, so the slots replaced at r are a subset of those at r + 1 (nested), and the noise text
of a slot is drawn once and reused for every r. ``order="random"`` (default): a seeded permutation per item
(generator ``numpy.random.default_rng([seed, 0, item])``, independent of which other items are processed);
``"shared"``: one seeded permutation for all items; ``"sequential"``: slots 0, 1, 2, 3.
Noise draws use ``default_rng([seed, 1, item])``. Everything is a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from hlv_assets.lib.nli import LETTERS, Explanation

__all__ = [
    "KINDS",
    "ORDERS",
    "ReplacementSets",
    "check_aligned",
    "draw_noise",
    "replace",
    "replacement_orders",
    "replacement_sets",
]

KINDS: tuple[str, ...] = ("model", "noise")
ORDERS: tuple[str, ...] = ("random", "shared", "sequential")


def _as_pairs(sets, name: str) -> list[list[Explanation]]:
    out = []
    for i, s in enumerate(sets):
        row = []
        for j, e in enumerate(s):
            if not (
                isinstance(e, (tuple, list)) and len(e) == 2 and isinstance(e[0], str) and e[1] in LETTERS
            ):
                raise ValueError(f"{name}[{i}][{j}]: expected (text, letter e/n/c), got {e!r:.80}")
            row.append((e[0], e[1]))
        out.append(row)
    return out


def check_aligned(
    human_sets: Sequence[Sequence[Explanation]], model_sets: Sequence[Sequence[Explanation]]
) -> None:
    """Raise ValueError unless every item has as many model as human explanations, with the same labels per slot."""
    if len(human_sets) != len(model_sets):
        raise ValueError(f"{len(human_sets)} human sets but {len(model_sets)} model sets")
    for i, (h, m) in enumerate(zip(human_sets, model_sets, strict=True)):
        if len(h) != len(m):
            raise ValueError(f"item {i}: {len(h)} human but {len(m)} model explanations")
        for j, (he, me) in enumerate(zip(h, m, strict=True)):
            if he[1] != me[1]:
                raise ValueError(f"item {i} slot {j}: human label {he[1]!r} but model label {me[1]!r}")


def replacement_orders(
    n_slots: Sequence[int], *, seed: int = 0, order: str = "random", items: Sequence[int] | None = None
) -> list[list[int]]:
    """The replacement order (a permutation of slot indices) of each item; `n_slots[k]` slots for item k.

    `items` are the item ids that seed the per-item generators (default 0..len-1), so a subset of items gets
    the same orders as in the full run.
    """
    if order not in ORDERS:
        raise ValueError(f"order {order!r}: expected one of {ORDERS}")
    items = list(range(len(n_slots))) if items is None else list(items)
    if len(items) != len(n_slots):
        raise ValueError(f"{len(items)} item ids for {len(n_slots)} items")
    out = []
    shared: dict[int, list[int]] = {}
    for item, n in zip(items, n_slots, strict=True):
        if order == "sequential":
            out.append(list(range(n)))
        elif order == "shared":
            if n not in shared:
                shared[n] = [int(k) for k in np.random.default_rng([seed, 0]).permutation(n)]
            out.append(list(shared[n]))
        else:
            out.append([int(k) for k in np.random.default_rng([seed, 0, int(item)]).permutation(n)])
    return out


def draw_noise(
    human_sets: Sequence[Sequence[Explanation]],
    *,
    seed: int = 0,
    same_label: bool = True,
    keep_slot_label: bool = True,
    pool: Sequence[Sequence[Explanation]] | None = None,
    items: Sequence[int] | None = None,
    pool_items: Sequence[int] | None = None,
) -> tuple[list[list[Explanation]], list[list[tuple[int, int]]]]:
    """One noise explanation per slot, from an item other than the slot's own.

    `pool` (default `human_sets`) holds the candidate explanations, `pool_items` their item ids (default
    0..len-1); `items` are the ids of `human_sets` (default 0..len-1). "Another item" compares ids. Returns the
    noise explanations per item and slot, and the (pool item id, slot) each came from.
    """
    human = _as_pairs(human_sets, "human_sets")
    pool_sets = human if pool is None else _as_pairs(pool, "pool")
    items = list(range(len(human))) if items is None else list(items)
    pool_ids = list(range(len(pool_sets))) if pool_items is None else list(pool_items)
    if len(items) != len(human) or len(pool_ids) != len(pool_sets):
        raise ValueError("items / pool_items must name every set")
    flat = [(pid, j, e) for pid, s in zip(pool_ids, pool_sets, strict=True) for j, e in enumerate(s)]
    flat_item = np.array([c[0] for c in flat])
    flat_label = np.array([c[2][1] for c in flat])
    text_ids: dict[str, int] = {}
    flat_text = np.array([text_ids.setdefault(c[2][0], len(text_ids)) for c in flat])
    out, sources = [], []
    for item, slots in zip(items, human, strict=True):
        rng = np.random.default_rng([seed, 1, int(item)])
        used: list[int] = []  # text ids already drawn for this item
        row, src = [], []
        for _text, label in slots:
            ok = flat_item != item
            if same_label:
                ok &= flat_label == label
            cands = np.flatnonzero(ok)
            if not len(cands):
                raise ValueError(f"item {item}: no noise candidate of label {label!r} from another item")
            fresh = cands[~np.isin(flat_text[cands], used)]
            if len(fresh):
                cands = fresh
            pick = int(cands[int(rng.integers(len(cands)))])
            pid, j, (ntext, nlabel) = flat[pick]
            used.append(int(flat_text[pick]))
            row.append((ntext, label if keep_slot_label else nlabel))
            src.append((pid, j))
        out.append(row)
        sources.append(src)
    return out, sources


def replace(
    human_sets: Sequence[Sequence[Explanation]],
    replacement_sets_: Sequence[Sequence[Explanation]],
    orders: Sequence[Sequence[int]],
    r: int,
) -> list[list[Explanation]]:
    """Each item's human list with the slots ``orders[i][:r]`` taken from ``replacement_sets_[i]``."""
    out = []
    for i, (h, rep, order) in enumerate(zip(human_sets, replacement_sets_, orders, strict=True)):
        if not 0 <= r <= len(h):
            raise ValueError(f"item {i}: r = {r} outside 0..{len(h)}")
        chosen = set(order[:r])
        out.append([tuple(rep[j]) if j in chosen else tuple(h[j]) for j in range(len(h))])
    return out


@dataclass
class ReplacementSets:
    """``sets[(kind, r)]``: explanation lists per item; ``orders``/``noise_sources`` for tracing."""

    sets: dict[tuple[str, int], list[list[Explanation]]]
    orders: list[list[int]]
    items: list[int]
    noise: list[list[Explanation]] | None = None
    noise_sources: list[list[tuple[int, int]]] | None = None
    params: dict = field(default_factory=dict)

    def replaced_slots(self, item_pos: int, r: int) -> set[int]:
        """Slot indices of the item at position `item_pos` that are replaced at `r`."""
        return set(self.orders[item_pos][:r])


def replacement_sets(
    human_sets: Sequence[Sequence[Explanation]],
    model_sets: Sequence[Sequence[Explanation]] | None = None,
    *,
    rs: Sequence[int] = (0, 1, 2, 3, 4),
    kinds: Sequence[str] = KINDS,
    seed: int = 0,
    order: str = "random",
    noise_same_label: bool = True,
    noise_keep_slot_label: bool = True,
    noise_pool: Sequence[Sequence[Explanation]] | None = None,
    items: Sequence[int] | None = None,
) -> ReplacementSets:
    """Explanation lists per item for every (kind, r).

    `human_sets[k]` / `model_sets[k]`: the (text, letter) explanations of item `items[k]` (default k), e.g.
    ``comments`` of NLI_explanations.json and ``explanations`` of ``read_released_selection(...,
    "varierr-lg-first")``. `model_sets` is needed for kind "model". The noise pool defaults to `human_sets`.
    """
    human = _as_pairs(human_sets, "human_sets")
    items = list(range(len(human))) if items is None else list(items)
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: expected one of {KINDS}")
    orders = replacement_orders([len(h) for h in human], seed=seed, order=order, items=items)
    result = ReplacementSets(
        sets={},
        orders=orders,
        items=items,
        params={
            "seed": seed,
            "order": order,
            "noise_same_label": noise_same_label,
            "noise_keep_slot_label": noise_keep_slot_label,
        },
    )
    if "model" in kinds:
        if model_sets is None:
            raise ValueError("kind 'model' needs model_sets (e.g. the released VariErr-LG set)")
        model = _as_pairs(model_sets, "model_sets")
        check_aligned(human, model)
        for r in rs:
            result.sets[("model", r)] = replace(human, model, orders, r)
    if "noise" in kinds:
        noise, sources = draw_noise(
            human,
            seed=seed,
            same_label=noise_same_label,
            keep_slot_label=noise_keep_slot_label,
            pool=noise_pool,
            items=items,
            pool_items=None if noise_pool is not None else items,
        )
        result.noise, result.noise_sources = noise, sources
        for r in rs:
            result.sets[("noise", r)] = replace(human, noise, orders, r)
    return result
