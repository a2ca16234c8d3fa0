"""NLI label conventions shared by every module: the order [E, N, C] and its spellings."""

from __future__ import annotations

LETTERS: tuple[str, str, str] = ("e", "n", "c")
WORDS: tuple[str, str, str] = ("entailment", "neutral", "contradiction")
TITLES: tuple[str, str, str] = ("Entailment", "Neutral", "Contradiction")
UPPER: tuple[str, str, str] = ("E", "N", "C")

#: One explanation: its text and the letter (e/n/c) of the label it explains.
Explanation = tuple[str, str]


class LabelError(ValueError):
    """A label that is not one of e/n/c (or a known spelling of them)."""


_ALIASES = {
    **{letter: i for i, letter in enumerate(LETTERS)},
    **{word: i for i, word in enumerate(WORDS)},
    **{letter.upper(): i for i, letter in enumerate(LETTERS)},
    **{word.title(): i for i, word in enumerate(WORDS)},
}


def label_index(label: str) -> int:
    """Index in [E, N, C] of a label written as a letter or a word; raises LabelError otherwise."""
    try:
        return _ALIASES[label]
    except (KeyError, TypeError):
        raise LabelError(
            f"unknown label {label!r}: expected one of e/n/c or entailment/neutral/contradiction"
        ) from None


def letter(label: str) -> str:
    return LETTERS[label_index(label)]
