"""The generation prompt of SPEC §2, verbatim (including the doubled "the")."""

from __future__ import annotations

import hashlib

from hlv_assets.lib.nli import label_index

#: How the generation prompt phrases each label, in [E, N, C] order.
GENERATION_LABEL_PHRASES = ("true (entailment)", "undetermined (neutral)", "false (contradiction)")

GENERATION_TEMPLATE = (
    "You are an expert in Natural Language Inference (NLI). Please list all possible explanations why the the "
    "following statement is {label_phrase} given the context below without introductory phrases. \n"
    "Context: {premise} \nStatement: {hypothesis} \nAnswer:"
)


def generation_prompt(premise: str, hypothesis: str, label: str) -> str:
    """User message asking for every explanation of `label` (a letter or word) for one item."""
    phrase = GENERATION_LABEL_PHRASES[label_index(label)]
    return GENERATION_TEMPLATE.format(label_phrase=phrase, premise=premise, hypothesis=hypothesis)


def template_sha256(template: str) -> str:
    """Short content hash of a prompt template: part of code versions and of the audit trail."""
    return hashlib.sha256(template.encode("utf-8")).hexdigest()[:16]
