"""Model judgment distributions (SPEC §3): the MJD prompts, their grid of option × explanation orders, and
the conversion of per-prompt letter scores into one distribution over [E, N, C] per item.

The prompts are the published ones, verbatim (MJD-Estimator ``MJD-generator.ipynb``): the options are the
words ``Entailment``/``Neutral``/``Contradiction`` behind the letters ``A``/``B``/``C``, and the explicit
variant ends each comment with ``So I choose {Entailment|Neutral|Contradiction}. ``.

An option order is a permutation of the label indices [E, N, C] = (0, 1, 2): ``option_order[j]`` is the label
shown behind letter j, so ``(1, 0, 2)`` shows ``A. Neutral``, ``B. Entailment``, ``C. Contradiction``. The six
orders are `OPTION_ORDERS`, in ``itertools.permutations`` order (the notebook's order). An explanation order
is a tuple of indices into the item's explanations (``permutations(range(n), r)``; r = n by default).

Per-prompt scores are kept raw (`JudgmentRecord`, in letter order, with their kind: logits or
log-probabilities) so a distribution can be recomputed without the LLM by `mjd_from_scores`. A missing letter
score (None) goes through the record's `missing_letters` rule (`hlv_assets.lib.missing_letters`): by default
it raises `MissingScoreError` naming the item, or the prompt is dropped from the average when asked explicitly
(``missing="skip"``).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from hlv_assets.lib import missing_letters as fill
from hlv_assets.lib.missing_letters import ConversionError, MissingScoreError
from hlv_assets.lib.nli import TITLES, label_index

PLAIN_TEMPLATE = (
    "Please determine whether the following statement is true (entailment), undetermined (neutral), or false "
    "(contradiction) given the context below and select ONE of the listed options and start your answer with "
    "a single letter. \nContext: {premise} \nStatement: {hypothesis} \nA. {o1} \nB. {o2} \nC. {o3}. \nAnswer:"
)
EXPLANATION_TEMPLATE = (
    "Please carefully and fairly base your selection on the comments below to determine whether the following "
    "statement is true (entailment), undetermined (neutral), or false (contradiction) given the context below "
    "and select ONE of the listed options and start your answer with a single letter. \nContext: {premise} "
    "\nStatement: {hypothesis} {comments}\nA. {o1} \nB. {o2} \nC. {o3}. \nAnswer:"
)
COMMENT_TEMPLATE = "\nComment {i}: {text} "
EXPLICIT_COMMENT_TEMPLATE = "\nComment {i}: {text} So I choose {label}. "

#: The option words, in [E, N, C] order.
OPTION_WORDS: tuple[str, str, str] = TITLES
#: The option letters, in the order they appear in the prompt.
OPTION_LETTERS: tuple[str, str, str] = ("A", "B", "C")
#: All six option orders; ``OPTION_ORDERS[0]`` = (0, 1, 2) = A. Entailment, B. Neutral, C. Contradiction.
OPTION_ORDERS: tuple[tuple[int, int, int], ...] = tuple(itertools.permutations(range(3)))  # type: ignore[assignment]
DEFAULT_TEMPERATURE = 20.0

Variant = Literal["plain", "explanations", "explicit"]
Conversion = Literal["normalize", "softmax"]
ScoreKind = Literal["logits", "logprobs"]
CONVERSIONS: tuple[str, ...] = ("normalize", "softmax")
#: Explanation orders: all arrangements, or this many seeded samples of them.
OrderSpec = Literal["all"] | int


# --------------------------------------------------------------------------------------------------
# prompts
# --------------------------------------------------------------------------------------------------


def _explanation_parts(explanation: Any) -> tuple[str, str | None]:
    """(text, letter or None) of an explanation given as a string or as [text, label]."""
    if isinstance(explanation, str):
        return explanation, None
    text, label = explanation[0], explanation[1]
    return str(text), label


def _check_option_order(option_order: Sequence[int]) -> tuple[int, int, int]:
    order = tuple(int(i) for i in option_order)
    if sorted(order) != [0, 1, 2]:
        raise ValueError(f"option order {option_order!r} is not a permutation of (0, 1, 2)")
    return order  # type: ignore[return-value]


def comments_text(explanations: Sequence[Any], explicit: bool = False) -> str:
    """The ``{comments}`` block: ``\\nComment {i}: {text} `` for each explanation (i from 1).

    With ``explicit`` each comment ends ``So I choose {Entailment|Neutral|Contradiction}. `` (the explanation's
    own label, so every explanation must carry one).
    """
    parts = []
    for i, explanation in enumerate(explanations, start=1):
        text, label = _explanation_parts(explanation)
        if explicit:
            if label is None:
                raise ValueError(
                    f"the explicit variant needs a label for every explanation; comment {i} has none"
                )
            parts.append(
                EXPLICIT_COMMENT_TEMPLATE.format(i=i, text=text, label=OPTION_WORDS[label_index(label)])
            )
        else:
            parts.append(COMMENT_TEMPLATE.format(i=i, text=text))
    return "".join(parts)


def mjd_prompt(
    premise: str,
    hypothesis: str,
    option_order: Sequence[int] = (0, 1, 2),
    explanations: Sequence[Any] | None = None,
    explicit: bool = False,
) -> str:
    """The user message of SPEC §3 for one option order; without explanations (None or empty) the plain prompt.

    `explanations` are strings or ``[text, label]`` pairs, already in the order they are to be shown.
    """
    o1, o2, o3 = (OPTION_WORDS[i] for i in _check_option_order(option_order))
    if not explanations:
        if explicit:
            raise ValueError("the explicit variant needs explanations")
        return PLAIN_TEMPLATE.format(premise=premise, hypothesis=hypothesis, o1=o1, o2=o2, o3=o3)
    comments = comments_text(explanations, explicit=explicit)
    return EXPLANATION_TEMPLATE.format(
        premise=premise, hypothesis=hypothesis, comments=comments, o1=o1, o2=o2, o3=o3
    )


def explanation_orders(
    n: int, r: int | None = None, sample: int | None = None, seed: int = 0
) -> list[tuple[int, ...]]:
    """Ordered arrangements of `r` (default all `n`) explanation indices, in ``itertools.permutations`` order.

    ``sample=K`` keeps K distinct arrangements drawn with `seed` (all of them when K is at least their number),
    still listed in canonical order so the grid is the same whatever the caller iterates.
    """
    r = n if r is None else r
    if n < 0 or not 0 <= r <= n:
        raise ValueError(f"cannot arrange {r} of {n} explanations")
    total = math.perm(n, r)
    if sample is None or sample >= total:
        return list(itertools.permutations(range(n), r))
    if sample < 1:
        raise ValueError(f"sample must be at least 1, got {sample}")
    rng = random.Random(seed)
    if total <= 100_000:
        chosen = rng.sample(range(total), sample)
        wanted = set(chosen)
        return [p for k, p in enumerate(itertools.permutations(range(n), r)) if k in wanted]
    picked: set[tuple[int, ...]] = set()
    while len(picked) < sample:
        picked.add(tuple(rng.sample(range(n), r)))
    return sorted(picked)


@dataclass(frozen=True)
class JudgmentPrompt:
    """One prompt of an item's grid and where it sits in it."""

    item: Hashable
    prompt: str
    option_order: tuple[int, int, int]
    explanation_order: tuple[int, ...]
    variant: Variant


def prompt_grid(
    premise: str,
    hypothesis: str,
    explanations: Sequence[Any] | None = None,
    *,
    item: Hashable = None,
    explicit: bool = False,
    orders: OrderSpec = "all",
    seed: int = 0,
    r: int | None = None,
    option_orders: Sequence[Sequence[int]] = OPTION_ORDERS,
) -> list[JudgmentPrompt]:
    """Every prompt of one item: each explanation order (outer) × each option order (inner).

    Without explanations the grid is the 6 option orders of the plain prompt. ``orders="all"`` uses every
    arrangement (24 for 4 explanations); an int K uses K seeded samples (`explanation_orders`).
    """
    explanations = list(explanations or [])
    if explanations:
        sample = None if orders == "all" else int(orders)
        eorders = explanation_orders(len(explanations), r=r, sample=sample, seed=seed)
        variant: Variant = "explicit" if explicit else "explanations"
    else:
        if explicit:
            raise ValueError("the explicit variant needs explanations")
        eorders, variant = [()], "plain"
    grid = []
    for eorder in eorders:
        shown = [explanations[k] for k in eorder]
        for oorder in option_orders:
            oorder = _check_option_order(oorder)
            grid.append(
                JudgmentPrompt(
                    item=item,
                    prompt=mjd_prompt(premise, hypothesis, oorder, shown or None, explicit=explicit),
                    option_order=oorder,
                    explanation_order=tuple(eorder),
                    variant=variant,
                )
            )
    return grid


# --------------------------------------------------------------------------------------------------
# raw scores
# --------------------------------------------------------------------------------------------------


@dataclass
class JudgmentRecord:
    """The raw letter scores of one prompt of the grid (letter order A, B, C), enough to recompute an MJD:
    `missing_letters` is the judge's rule for a None score, `top_k_floor` the smallest log-probability of the
    response's top-k list (API judges; what the `floor` rule fills in)."""

    item: Hashable
    option_order: tuple[int, int, int]
    explanation_order: tuple[int, ...]
    variant: str
    scores: list[float | None]
    kind: ScoreKind
    letters: tuple[str, ...] = OPTION_LETTERS
    token_ids: list[int] | None = None
    letter_mass: float | None = None
    prompt_tokens: int = 0
    missing_letters: str = fill.DEFAULT_MISSING_LETTERS
    top_k_floor: float | None = None

    def as_dict(self) -> dict:
        out = asdict(self)
        out["option_order"] = list(self.option_order)
        out["explanation_order"] = list(self.explanation_order)
        out["letters"] = list(self.letters)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> JudgmentRecord:
        data = dict(data)
        data["option_order"] = tuple(data["option_order"])
        data["explanation_order"] = tuple(data.get("explanation_order") or ())
        data["letters"] = tuple(data.get("letters") or OPTION_LETTERS)
        return cls(**data)


def records_from_scores(grid: Sequence[JudgmentPrompt], label_scores: Sequence[Any],
                        missing_letters: str = fill.DEFAULT_MISSING_LETTERS) -> list[JudgmentRecord]:
    """Pair each prompt of `grid` with its backend `LabelScores` (same order) into `JudgmentRecord`s that
    carry the judge's `missing_letters` rule."""
    fill.check_rule(missing_letters)
    if len(grid) != len(label_scores):
        raise ValueError(f"{len(grid)} prompts but {len(label_scores)} scores")
    records = []
    for prompt, scored in zip(grid, label_scores, strict=True):
        if len(scored.scores) != 3:
            raise ValueError(f"expected 3 letter scores, got {len(scored.scores)}")
        records.append(
            JudgmentRecord(
                item=prompt.item,
                option_order=prompt.option_order,
                explanation_order=prompt.explanation_order,
                variant=prompt.variant,
                scores=list(scored.scores),
                kind=scored.kind,
                letters=tuple(scored.letters),
                token_ids=list(scored.token_ids) if scored.token_ids is not None else None,
                letter_mass=scored.letter_mass,
                prompt_tokens=scored.prompt_tokens,
                missing_letters=missing_letters,
                top_k_floor=scored.top_k_floor,
            )
        )
    return records


# --------------------------------------------------------------------------------------------------
# scores to distributions
# --------------------------------------------------------------------------------------------------


def _finite_scores(scores: Sequence[float | None]) -> list[float]:
    missing = [j for j, s in enumerate(scores) if s is None]
    if missing:
        letters = ", ".join(OPTION_LETTERS[j] if j < 3 else str(j) for j in missing)
        raise MissingScoreError(
            f"no score for letter(s) {letters}: a missing score is never filled with a number"
        )
    values = [float(s) for s in scores]  # type: ignore[arg-type]
    if not all(math.isfinite(v) for v in values):
        raise ConversionError(f"non-finite scores {values}")
    return values


def normalize(scores: Sequence[float | None], kind: ScoreKind = "logits") -> list[float]:
    """The published conversion p = l / Σl, on raw logits that are all positive; refused otherwise."""
    if kind != "logits":
        raise ConversionError(
            f"normalize (p = l / sum l) needs raw logits, got {kind}: use softmax for log-probabilities"
        )
    values = _finite_scores(scores)
    if any(v <= 0 for v in values):
        raise ConversionError(
            f"normalize (p = l / sum l) is only meaningful when every logit is positive, got {values}: use softmax"
        )
    total = math.fsum(values)
    return [v / total for v in values]


def softmax(scores: Sequence[float | None], temperature: float = DEFAULT_TEMPERATURE) -> list[float]:
    """softmax(s / T) over the letters; the same from logits or log-probabilities (shift invariant)."""
    if not temperature > 0:
        raise ConversionError(f"temperature must be positive, got {temperature}")
    values = _finite_scores(scores)
    top = max(values)
    weights = [math.exp((v - top) / temperature) for v in values]
    total = math.fsum(weights)
    return [w / total for w in weights]


def convert(
    scores: Sequence[float | None],
    conversion: Conversion = "softmax",
    kind: ScoreKind = "logits",
    temperature: float = DEFAULT_TEMPERATURE,
) -> list[float]:
    """Letter scores to a distribution over the same letters."""
    if conversion == "normalize":
        return normalize(scores, kind)
    if conversion == "softmax":
        return softmax(scores, temperature)
    raise ValueError(f"unknown conversion {conversion!r}: expected one of {CONVERSIONS}")


def to_label_order(letter_values: Sequence[float], option_order: Sequence[int]) -> list[float]:
    """Values in letter order (A, B, C) to label order [E, N, C]: letter j shows label ``option_order[j]``."""
    order = _check_option_order(option_order)
    out = [0.0, 0.0, 0.0]
    for j, label in enumerate(order):
        out[label] = letter_values[j]
    return out


def prompt_distribution(
    record: JudgmentRecord, conversion: Conversion = "softmax", temperature: float = DEFAULT_TEMPERATURE
) -> list[float]:
    """The [E, N, C] distribution of one prompt; a missing letter goes through the record's `missing_letters`
    rule (a letter that rule drops gets probability 0); a refusal names the item and the option order."""
    try:
        values, kept = fill.apply_rule(record.scores, record.missing_letters, record.top_k_floor)
        probs = iter(convert(values, conversion, record.kind, temperature))
    except MissingScoreError as exc:
        raise MissingScoreError(f"item {record.item!r}, option order {list(record.option_order)}: {exc} "
                                f"(missing_letters={record.missing_letters})") from None
    return to_label_order([next(probs) if k else 0.0 for k in kept], record.option_order)


def mjd_from_scores(
    records: Iterable[JudgmentRecord],
    conversion: Conversion = "softmax",
    temperature: float = DEFAULT_TEMPERATURE,
    missing: Literal["error", "skip"] = "error",
) -> dict[Hashable, list[float]]:
    """One MJD per item: the mean over its prompts (all option × explanation orders) of the per-prompt [E, N, C].

    ``missing="skip"`` drops the prompts with a missing letter score from the average (an item left with no
    prompt raises); the default raises `MissingScoreError`. Items keep their first-seen order.
    """
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    sums: dict[Hashable, list[list[float]]] = {}
    skipped: dict[Hashable, int] = {}
    for record in records:
        per_item = sums.setdefault(record.item, [])
        if missing == "skip" and any(s is None for s in record.scores):
            skipped[record.item] = skipped.get(record.item, 0) + 1
            continue
        per_item.append(prompt_distribution(record, conversion, temperature))
    out = {}
    for item, dists in sums.items():
        if not dists:
            raise MissingScoreError(
                f"item {item!r}: every one of its {skipped.get(item, 0)} prompts misses a letter"
            )
        out[item] = [math.fsum(d[k] for d in dists) / len(dists) for k in range(3)]
    return out


def count_missing(records: Iterable[JudgmentRecord]) -> dict[Hashable, int]:
    """Per item, how many prompts miss at least one letter score (what ``missing="skip"`` would drop)."""
    counts: dict[Hashable, int] = {}
    for record in records:
        if any(s is None for s in record.scores):
            counts[record.item] = counts.get(record.item, 0) + 1
    return counts
