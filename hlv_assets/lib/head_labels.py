"""Which output of a checkpoint's classification head is which NLI label: read from its config when the names
are NLI words, else the user's order, else refused (never a silent fresh head).

`plan_head(config, head, labels)` decides, from a transformers config alone (no weights), what
`encoders.build_classifier` does with a checkpoint:

- a 3-way head whose ``id2label`` names entailment / neutral / contradiction (any case; also ``e``/``n``/``c``,
  ``entail``, ``entailed``, ``contradict``, ``contradictory``) is kept and its rows permuted to [E, N, C];
- a head with generic names (``LABEL_0``...) is kept only with the user's order (``labels``: the names of
  outputs 0, 1, 2, e.g. ``entailment,neutral,contradiction``); without it `LabelMappingError`, one line;
- a checkpoint with no sequence-classification head (a base encoder such as ``bert-base-uncased``) gets a
  fresh head, and the plan says so (``mode="fresh"`` with the reason);
- ``head="fresh"`` always gives a fresh head (recorded as asked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hlv_assets.lib.errors import LabelMappingError
from hlv_assets.lib.nli import WORDS

NAME_TO_INDEX = {
    "e": 0, "entailment": 0, "entail": 0, "entailed": 0,
    "n": 1, "neutral": 1,
    "c": 2, "contradiction": 2, "contradict": 2, "contradictory": 2,
}
ORDER_EXAMPLE = "entailment,neutral,contradiction"


def nli_label_permutation(id2label: Mapping[Any, str] | None) -> list[int] | None:
    """``perm`` with ``perm[j]`` = the checkpoint's output index of label j in [E, N, C], or None.

    None when the names are not exactly one each of entailment, neutral and contradiction.
    """
    if not id2label or len(id2label) != 3:
        return None
    source: dict[int, int] = {}
    for key, name in id2label.items():
        target = NAME_TO_INDEX.get(str(name).strip().lower())
        if target is None or target in source:
            return None
        source[target] = int(key)
    if sorted(source.values()) != [0, 1, 2]:
        return None
    return [source[j] for j in range(3)]


def parse_label_order(value: str | Sequence[str], where: str = "head_labels") -> list[str]:
    """The user's order of a head's outputs as canonical words [name of output 0, 1, 2]; refused in one line
    unless it names entailment, neutral and contradiction once each (any case, the variants above)."""
    names = [p.strip() for p in value.split(",")] if isinstance(value, str) else [str(p).strip() for p in value]
    perm = nli_label_permutation(dict(enumerate(names)))
    if perm is None:
        raise LabelMappingError(f"{where}={','.join(names)!r} is not an order of the three NLI labels; give the "
                                f"names of outputs 0, 1, 2 separated by commas, e.g. {ORDER_EXAMPLE}")
    return [WORDS[NAME_TO_INDEX[n.lower()]] for n in names]


def has_classification_head(config: Any) -> bool:
    """Whether the checkpoint was saved with a sequence-classification head (its config's architectures)."""
    return any(str(a).endswith("ForSequenceClassification") for a in (getattr(config, "architectures", None) or []))


@dataclass(frozen=True)
class HeadPlan:
    mode: str  # keep or fresh
    permutation: list[int] | None
    labels_from: str | None  # config (id2label names), setting (the user's order), None (fresh head)
    reason: str  # why this head, for rows and logs

    def info(self) -> dict[str, Any]:
        return {"head": self.mode, "permutation": self.permutation, "labels_from": self.labels_from,
                "head_reason": self.reason}


def plan_head(config: Any, head: str = "auto", labels: Sequence[str] | str | None = None, *, name: str = "",
              setting: str = "head_labels") -> HeadPlan:
    """What to do with the head of the checkpoint `name` whose transformers config is `config`.

    `setting` is where the user gives the order (an environment variable or the FinetuneConfig field); it is
    named in the refusal.
    """
    if head not in ("auto", "fresh", "keep"):
        raise ValueError(f"head must be auto, fresh or keep, not {head!r}")
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    has_head = has_classification_head(config)
    from_config = nli_label_permutation(id2label) if has_head else None
    order = parse_label_order(labels, setting) if labels is not None else None
    from_user = [order.index(w) for w in WORDS] if order is not None else None
    if head == "fresh":
        return HeadPlan("fresh", None, None, "fresh head asked for (head=fresh)")
    if order is not None and not (has_head and len(id2label) == 3):
        raise LabelMappingError(f"{setting} gives a label order but {name} has no 3-way classification head "
                                f"(id2label {id2label}); unset {setting}")
    if from_user is not None and from_config is not None and from_user != from_config:
        raise LabelMappingError(f"{setting}={','.join(order)} contradicts the id2label {id2label} of {name}; "
                                f"unset {setting} (the names in the checkpoint are used)")
    if not has_head and head == "auto":
        return HeadPlan("fresh", None, None, "the checkpoint has no classification head")
    if from_config is not None:
        return HeadPlan("keep", from_config, "config", "the checkpoint's head, labels named in its config")
    if from_user is not None:
        return HeadPlan("keep", from_user, "setting", f"the checkpoint's head, label order from {setting}")
    raise LabelMappingError(
        f"{name}: the labels of its classification head {id2label} are not entailment/neutral/contradiction; "
        f"give the order of its outputs in {setting} (e.g. {setting}={ORDER_EXAMPLE}) or train a fresh head "
        "(head=fresh)")
