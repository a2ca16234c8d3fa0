"""Selection of model explanations into the six sets of SPEC §2: k per label, padding, ties, slot order."""

from __future__ import annotations

import pytest

from hlv_assets.lib.selection import (
    RELEASED_SELECTION_OPTIONS,
    SET_NAMES,
    SelectionError,
    SelectionOptions,
    needed_counts,
    rank_explanations,
    select_explanations,
    split_set_name,
)

PARSED = {
    "e": ["e-short", "e-the-longest", "e-mid-len"],
    "n": ["n1", "n-two", "n-3!!", "n-four"],
    "c": ["c-only-one"],
}


def test_set_names_and_split():
    assert SET_NAMES == (
        "lf-first",
        "lf-longest",
        "varierr-lg-first",
        "varierr-lg-longest",
        "mnli-lg-first",
        "mnli-lg-longest",
    )
    assert split_set_name("varierr-lg-longest") == ("varierr-lg", "longest")
    assert split_set_name("lf-first") == ("lf", "first")
    with pytest.raises(SelectionError, match="unknown explanation set"):
        split_set_name("lf-shortest")
    with pytest.raises(SelectionError):
        select_explanations(PARSED, "random-first")


def test_lf_one_per_label_in_lf_order():
    assert select_explanations(PARSED, "lf-first") == [("e-short", "e"), ("n1", "n"), ("c-only-one", "c")]
    llama = RELEASED_SELECTION_OPTIONS["llama3"]
    assert select_explanations(PARSED, "lf-first", options=llama) == [
        ("e-short", "e"),
        ("c-only-one", "c"),
        ("n1", "n"),
    ]
    gpt = RELEASED_SELECTION_OPTIONS["gpt4o"]
    assert select_explanations(PARSED, "lf-longest", options=gpt) == [
        ("e-the-longest", "e"),
        ("n-four", "n"),
        ("c-only-one", "c"),
    ]


def test_longest_ties_keep_answer_order():
    # "n-two", "n-3!!" are both 5 characters; "n-four" is 6.
    assert rank_explanations(PARSED["n"], "longest") == ["n-four", "n-two", "n-3!!", "n1"]
    assert rank_explanations(PARSED["n"], "longest", ties="last") == ["n-four", "n-3!!", "n-two", "n1"]
    assert rank_explanations(PARSED["n"], "first") == PARSED["n"]
    with pytest.raises(SelectionError):
        rank_explanations(PARSED["n"], "shortest")


def test_varierr_follows_the_human_label_sequence():
    human = ["n", "e", "n", "n"]
    out = select_explanations(PARSED, "varierr-lg-first", human, varierr_counts=[1, 3, 0])
    assert out == [("n1", "n"), ("e-short", "e"), ("n-two", "n"), ("n-3!!", "n")]
    out = select_explanations(PARSED, "varierr-lg-longest", human, varierr_counts=[1, 3, 0])
    assert out == [("n-four", "n"), ("e-the-longest", "e"), ("n-two", "n"), ("n-3!!", "n")]
    with pytest.raises(SelectionError, match="do not match"):
        select_explanations(PARSED, "varierr-lg-first", human, varierr_counts=[2, 2, 0])
    with pytest.raises(SelectionError, match="human label sequence"):
        select_explanations(PARSED, "varierr-lg-first")


def test_mnli_slots_grouped_in_enc_order():
    out = select_explanations(PARSED, "mnli-lg-first", mnli_counts=[2, 0, 3])
    assert [lab for _, lab in out] == ["e", "e", "c", "c", "c"]
    assert out[:2] == [("e-short", "e"), ("e-the-longest", "e")]
    assert needed_counts("mnli-lg-first", mnli_counts=[2, 0, 3]) == {"e": 2, "n": 0, "c": 3}
    with pytest.raises(SelectionError, match="MNLI label counts"):
        select_explanations(PARSED, "mnli-lg-first")
    with pytest.raises(SelectionError):
        select_explanations(PARSED, "mnli-lg-first", mnli_counts=[2, -1, 3])


def test_padding_with_fewer_than_k():
    parsed = {"e": ["A", "BB"], "n": [], "c": []}
    # released convention: pad with the best-ranked explanation (Llama3 items 226 and 305: 0, 1, 0, 0)
    first = select_explanations(parsed, "varierr-lg-first", ["e"] * 4)
    assert [t for t, _ in first] == ["A", "BB", "A", "A"]
    longest = select_explanations(parsed, "varierr-lg-longest", ["e"] * 4)
    assert [t for t, _ in longest] == ["BB", "A", "BB", "BB"]
    # SPEC's wording: cyclic reuse
    cyc = select_explanations(parsed, "varierr-lg-first", ["e"] * 4, options=SelectionOptions(fill="cycle"))
    assert [t for t, _ in cyc] == ["A", "BB", "A", "BB"]
    # the two agree when at most one explanation is missing
    three = select_explanations(parsed, "mnli-lg-first", mnli_counts=[3, 0, 0])
    assert [t for t, _ in three] == ["A", "BB", "A"]
    one = select_explanations({"e": ["only"]}, "mnli-lg-first", mnli_counts=[5, 0, 0])
    assert one == [("only", "e")] * 5


def test_empty_label_skip_or_error():
    parsed = {"e": ["A"], "n": [], "c": ["C"]}
    assert select_explanations(parsed, "lf-first") == [("A", "e"), ("C", "c")]
    assert select_explanations(parsed, "mnli-lg-first", mnli_counts=[1, 2, 2]) == [
        ("A", "e"),
        ("C", "c"),
        ("C", "c"),
    ]
    with pytest.raises(SelectionError, match="no explanation for label 'n'"):
        select_explanations(parsed, "lf-first", options=SelectionOptions(on_empty="error"))
    # a label with k = 0 may be empty even with on_empty="error"
    out = select_explanations(
        parsed, "mnli-lg-first", mnli_counts=[3, 0, 2], options=SelectionOptions(on_empty="error")
    )
    assert len(out) == 5


def test_labels_given_as_words_and_texts_untouched():
    parsed = {"entailment": ["  spaced text\n"], "neutral": ["n"], "contradiction": ["c"]}
    assert select_explanations(parsed, "lf-first")[0] == ("  spaced text\n", "e")
    out = select_explanations(
        parsed, "varierr-lg-first", ["Entailment", "n", "c", "c"], varierr_counts=[1, 1, 2]
    )
    assert [lab for _, lab in out] == ["e", "n", "c", "c"]


def test_option_validation():
    with pytest.raises(ValueError):
        SelectionOptions(lf_order=("e", "e", "n"))
    with pytest.raises(ValueError):
        SelectionOptions(fill="random")
    with pytest.raises(ValueError):
        SelectionOptions(ties="middle")
    with pytest.raises(ValueError):
        SelectionOptions(on_empty="ignore")
