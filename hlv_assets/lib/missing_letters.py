"""Letters missing from a judge's scores, and the errors of turning letter scores into a distribution.

An API judge returns only its top-k log-probabilities, so a letter can be absent from them. Each judge names
the rule its scores go through before the conversion (`missing_letters`, a registry option):

* ``refuse`` (the default): a prompt with a missing letter has no distribution, so the MJD is refused;
* ``renormalize``: the conversion runs over the letters present, a missing letter gets probability 0;
* ``floor``: a missing letter gets the smallest log-probability of that response's top-k list (it ranked
  below every returned token, so its true value is at most that).

At T = 20 with A = -0.01, B = -5 and C missing (its true log-probability -20; the top-k list's smallest
-12): renormalize gives [.562 .438 0], floor [.430 .335 .236], the truth [.466 .363 .171]. The authors' rule
for GPT-4o is not published.
"""

from __future__ import annotations

from collections.abc import Sequence

MISSING_LETTER_RULES: tuple[str, ...] = ("refuse", "renormalize", "floor")
DEFAULT_MISSING_LETTERS = "refuse"


class ConversionError(ValueError):
    """Scores that cannot be turned into a distribution by the conversion asked for."""


class MissingScoreError(ConversionError):
    """A letter's score is missing (None) and the rule does not say what to do with it."""


def check_rule(rule: object) -> str:
    """`rule` if it is one of MISSING_LETTER_RULES; a ValueError listing them otherwise."""
    if rule not in MISSING_LETTER_RULES:
        raise ValueError(f"missing_letters must be one of {', '.join(MISSING_LETTER_RULES)}, got {rule!r}")
    return str(rule)


def apply_rule(
    scores: Sequence[float | None], rule: str, floor: float | None
) -> tuple[list[float | None], list[bool]]:
    """(the scores to convert, whether each letter is kept): `refuse` passes the scores unchanged (the
    conversion refuses a None), `renormalize` keeps the present letters only (the dropped ones get probability
    0), `floor` fills a None with `floor`, the smallest log-probability of the response's top-k list."""
    check_rule(rule)
    present = [s is not None for s in scores]
    if all(present) or rule == "refuse":
        return list(scores), [True] * len(scores)
    if rule == "renormalize":
        if not any(present):
            raise MissingScoreError("every letter is missing: nothing to renormalize over")
        return [s for s in scores if s is not None], present
    if floor is None:
        raise MissingScoreError(
            "no top-k floor was recorded with these scores (only top-k log-probabilities of an API carry one)"
        )
    return [floor if s is None else s for s in scores], [True] * len(scores)
