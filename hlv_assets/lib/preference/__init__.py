"""Human validation of Llama3 explanations (items 0-99) and preference-based replacement (SPEC §6).

The workbook ``mjd_estimator/Model-Explanation/Validated_Llama3_Explanations.xlsx`` (sheet ``Sheet1``) has a
header row, then one row per parsed Llama3 bullet of items 0-99 of ``NLI_explanations.json``, with blank
separator rows between (item, label) blocks. Columns (by position; the header texts are checked by prefix):

====  =====================  ==================================================================
A     ID                     item index 0-99 (line of NLI_explanations.json)
B     Context/Premise        premise (as typed into Excel: item 38 lost its leading apostrophe)
C     Statement/Hypothesis   hypothesis
D     LLM-Label              ``<Label>-<k>``: Entailment / Neutral / Contradiction / NotEntailment, k = bullet
E     LLM-Explanation        the bullet text
F     Q1                     faithful to premise and hypothesis (y/n)
G     Q2                     brings additional relevant information for a reasonable label (y/n)
H     Q3                     the NLI label the explanation supports (E/N/C, ``-`` = none)
====  =====================  ==================================================================

Our reading, every choice a parameter:

* ``NotEntailment-k`` rows are bullets of the *entailment* prompt in which Llama3 argued against entailment
  (the raw output says "why the statement is NOT true"); they keep their E slot (``label_map``).
* y/n and E/N/C/- are read case-insensitively (one Q2 cell holds ``N``); a ``-`` in Q1/Q2 (one Q2 cell, row
  1636) reads as no (``dash_in_yes_no``). A row whose three judgments are all
  blank (sheet row 1351) is kept as *unjudged*: it counts in no share and is never preferred/unpreferred.
  A blank among filled judgments, or any other value, is an error naming the sheet row and column.
* faithful = Q1 y; informative = Q2 y; label-consistent = Q3 equals the label the bullet was generated for.
  **Preferred** = all three (:class:`PreferenceRule` can drop any of them); **unpreferred** = judged and not
  preferred.
* Selection replaces the 4 human explanations (slots) of an item by Llama3 bullets of the same label:
  ``greedy``: slot by slot, the first matching (preferred / unpreferred) bullet of the slot's label in list
  order that this item has not used yet. ``representative``: the bullets of a label are cut into as many
  contiguous, near-equal blocks (``numpy.array_split``) as the item has slots of that label, and the t-th slot
  of the label takes the first matching bullet of block t — the chosen bullets then cover the model's whole
  list rather than its top (with one slot of a label this is greedy). ``aligned``: the t-th slot of a label
  may only take the t-th bullet (the VariErr-LG-first counterpart), if it matches. A slot without a match
  keeps its human explanation (``fallback="human"``), or takes the first unused bullet of its label whatever
  the judgments (``"any"``), or is left out (``"drop"``). The share reported is filled slots / all slots.

Modules: `model` (the bullet, the rule, shares), `workbook` (reading the workbook), `selection` (replacement).
"""

from hlv_assets.lib.preference.model import (
    HEADER_PREFIXES,
    LABEL_MAP,
    METHODS,
    POSTER_SHARES,
    VALIDATED_RELPATH,
    PreferenceRule,
    ValidatedExplanation,
    check_against_items,
    preference_shares,
    to_frame,
    validated_path,
)
from hlv_assets.lib.preference.selection import SelectionResult, candidates_by_item, select_explanations
from hlv_assets.lib.preference.workbook import read_validated_explanations
from hlv_assets.lib.validation import DataFormatError

__all__ = [
    "DataFormatError",
    "HEADER_PREFIXES",
    "LABEL_MAP",
    "METHODS",
    "POSTER_SHARES",
    "VALIDATED_RELPATH",
    "PreferenceRule",
    "SelectionResult",
    "ValidatedExplanation",
    "candidates_by_item",
    "check_against_items",
    "preference_shares",
    "read_validated_explanations",
    "select_explanations",
    "to_frame",
    "validated_path",
]
