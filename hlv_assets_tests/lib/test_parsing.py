"""Parsing LLM answers into explanations: SPEC §2 default and the three published conventions."""

from __future__ import annotations

import pytest

from hlv_assets.lib.parsing import (
    DEFAULT_OPTIONS,
    RELEASED_PARSE_OPTIONS,
    ParseOptions,
    parse_explanations,
)
from hlv_assets.lib.released import read_released_generations, strip_template

LLAMA3 = RELEASED_PARSE_OPTIONS["llama3"]
GPT4O = RELEASED_PARSE_OPTIONS["gpt4o"]
MIXTRAL = RELEASED_PARSE_OPTIONS["mixtral"]

# Llama3, item 138, label E (shortened): intro line, `* ` bullets, a trailing note.
LLAMA3_138_E = (
    "\n\nHere are the possible explanations why the statement is NOT true (contradiction):\n\n"
    "* The context implies that Americans suspected Communists of infiltrating the government.\n"
    '* The phrase "about to subvert our democracy" suggests that Communists were perceived as a threat.\n\n'
    "Note: The statement is actually a contradiction, not an entailment, given the provided context."
)


@pytest.mark.parametrize("options", [DEFAULT_OPTIONS, LLAMA3], ids=["default", "llama3"])
def test_bullets_intro_and_trailing_note_dropped(options):
    res = parse_explanations(LLAMA3_138_E, options)
    assert res.ok and res.style == "list"
    assert res.explanations == [
        "The context implies that Americans suspected Communists of infiltrating the government.",
        'The phrase "about to subvert our democracy" suggests that Communists were perceived as a threat.',
    ]
    assert res.dropped[0].startswith("Here are the possible explanations")
    assert res.dropped[1].startswith("Note:")


def test_paragraph_without_markers_is_one_explanation():
    # Llama3, item 37, label E: a single paragraph answer.
    answer = (
        "\n\nThere are no possible explanations why the statement is true, as it is actually false. "
        "The context states that it took Christian kings and warlords 400 years to subdue the Moors."
    )
    for options in (DEFAULT_OPTIONS, LLAMA3):
        res = parse_explanations(answer, options)
        assert res.ok and res.style == "lines"
        assert res.explanations == [answer.strip()]


def test_lines_without_markers_each_one_explanation_intro_dropped():
    res = parse_explanations("Possible reasons:\nFirst reason.\n\nSecond reason.\n")
    assert res.explanations == ["First reason.", "Second reason."]
    assert res.dropped == ["Possible reasons:"]


def test_paragraph_fallback_joins_wrapped_lines():
    options = ParseOptions(paragraph_fallback="paragraph")
    res = parse_explanations("First reason\ncontinues here.\n\nSecond reason.", options)
    assert res.style == "paragraph"
    assert res.explanations == ["First reason continues here.", "Second reason."]


def test_gpt4o_keeps_line_end_and_trailing_spaces():
    # GPT4o, item 211, label C: `- ` bullets, one with two trailing spaces; the released files keep them.
    answer = (
        "- You are not told to end early; you are only informed when you have five seconds left.  \n"
        "- The context does not mention any instance of being told to end before the ten minutes are up.\n"
        "- The only notification mentioned is the five-second warning, not an early termination."
    )
    assert parse_explanations(answer, GPT4O).explanations == [
        "You are not told to end early; you are only informed when you have five seconds left.  \n",
        "The context does not mention any instance of being told to end before the ten minutes are up.\n",
        "The only notification mentioned is the five-second warning, not an early termination.",
    ]
    assert parse_explanations(answer).explanations[0].endswith("seconds left.")


def test_gpt4o_plain_lines_verbatim():
    # GPT4o, item 127, label E: no markers, lines end with two spaces.
    answer = (
        "David Cope is a professor of music.  \nDavid Cope claims to have created a 42nd Mozart symphony."
    )
    assert parse_explanations(answer, GPT4O).explanations == [
        "David Cope is a professor of music.  \n",
        "David Cope claims to have created a 42nd Mozart symphony.",
    ]


def test_bare_number_left_by_a_cut_generation_is_dropped():
    # GPT4o, item 97, label N ends with a bare "9." (cut at the token limit).
    answer = "1. The statement is vague.\n2. The term could refer to a wide range of issues.\n9."
    for options in (DEFAULT_OPTIONS, GPT4O):
        res = parse_explanations(answer, options)
        assert [t.strip() for t in res.explanations] == [
            "The statement is vague.",
            "The term could refer to a wide range of issues.",
        ]
        assert res.dropped == ["9."]


def test_mixtral_keeps_intro_lines_and_dash_lines():
    # Mixtral, item 148, label E (shortened): the released selections use the intro line as an explanation.
    answer = (
        " Sure, I'd be happy to help! Here are some possible explanations:\n\n"
        "1. The success of the policy created a favorable situation.\n"
        "2. The speaker's contribution was a direct result of the policy's success.\n"
        "3. The"
    )
    assert parse_explanations(answer, MIXTRAL, complete=False).explanations == [
        "Sure, I'd be happy to help! Here are some possible explanations:",
        "The success of the policy created a favorable situation.",
        "The speaker's contribution was a direct result of the policy's success.",
        "The",
    ]
    # SPEC reading: the intro is dropped.
    assert (
        parse_explanations(answer).explanations[0]
        == "The success of the policy created a favorable situation."
    )
    # Mixtral, item 79, label C (cut at the token limit): `- ` is not a marker in Mixtral's convention.
    dashes = " - Tacit knowledge or understanding\n- Identity of the person who created the document"
    assert parse_explanations(dashes, MIXTRAL, complete=False).explanations == [
        "- Tacit knowledge or understanding",
        "- Identity of the person who created the document",
    ]
    assert parse_explanations(dashes).explanations == [
        "Tacit knowledge or understanding",
        "Identity of the person who created the document",
    ]


def test_mixtral_star_bullets_with_leading_space():
    # Mixtral, item 22, label N: `[/INST]` leaves a leading space before the first `*`.
    answer = " * The context does not specify the source.\n* The context does not give the topic."
    assert parse_explanations(answer, MIXTRAL).explanations == [
        "The context does not specify the source.",
        "The context does not give the topic.",
    ]


def test_mixtral_closing_line_dropped_only_when_complete():
    # Mixtral, item 69 (complete, note dropped) and item 81 (cut inside the note: kept).
    answer = " 1. He saw similar images in a museum.\n2. He viewed the pictures online.\n\nNote: These explanations are"
    complete = parse_explanations(answer, MIXTRAL, complete=True)
    assert complete.explanations == ["He saw similar images in a museum.", "He viewed the pictures online."]
    assert complete.dropped == ["Note: These explanations are"]
    cut = parse_explanations(answer, MIXTRAL, complete=False)
    assert cut.explanations[-1] == "Note: These explanations are"
    # Without markers too (Mixtral, item 38, label C): the last line of a complete answer goes.
    plain = " First line.\nSecond line.\nThe closing remark that is the longest line of all."
    assert parse_explanations(plain, MIXTRAL).explanations == ["First line.", "Second line."]
    # A single line is never dropped (Mixtral, item 29, label C).
    assert parse_explanations(" Only one line.", MIXTRAL).explanations == ["Only one line."]


def test_markdown_numbered_parenthesis_and_wrapped_lines():
    answer = (
        "Here are the explanations:\n\n"
        "1. **Lexical overlap**: The context says X.\n"
        "2) The *statement* adds __new__ information.\n"
        "3. A third reason\n   that wraps onto the next line.\n\n"
        "Note: these are guesses."
    )
    res = parse_explanations(answer)
    assert res.explanations == [
        "Lexical overlap: The context says X.",
        "The statement adds new information.",
        "A third reason that wraps onto the next line.",
    ]
    assert res.dropped == ["Here are the explanations:", "Note: these are guesses."]
    # markdown is kept when asked to
    raw = parse_explanations(answer, ParseOptions(strip_markdown=False))
    assert raw.explanations[0] == "**Lexical overlap**: The context says X."


def test_bold_heading_item_with_text_on_next_line():
    answer = "1. **Different subject:**\n   The statement is about lepers.\n2. **Bold heading only:**"
    assert parse_explanations(answer).explanations == ["Different subject: The statement is about lepers."]


def test_nested_bullets_flatten_and_merge():
    answer = "* Group heading:\n  * sub one\n  * sub two\n* Parent item\n    - child detail"
    flat = parse_explanations(answer)
    assert flat.explanations == ["sub one", "sub two", "Parent item", "child detail"]
    assert flat.dropped == ["Group heading:"]
    merged = parse_explanations(answer, ParseOptions(nested="merge"))
    assert merged.explanations == ["sub one", "sub two", "Parent item child detail"]


def test_other_bullet_characters_and_numbers_inside_text():
    assert parse_explanations("• one\n• two").explanations == ["one", "two"]
    assert parse_explanations("+ one\n+ two").explanations == ["one", "two"]
    assert parse_explanations("(1) one\n(2) two").explanations == ["one", "two"]
    # "1.5" and "-based" are not markers; a marker needs whitespace after it.
    res = parse_explanations("1. The price rose 1.5 percent.\n2. -based reasoning fails.")
    assert res.explanations == ["The price rose 1.5 percent.", "-based reasoning fails."]
    assert parse_explanations("**Bold** line without marker.").explanations == ["Bold line without marker."]


def test_markdown_heading_lines_dropped():
    assert parse_explanations("### Reasons\n- first\n- second").explanations == ["first", "second"]
    assert parse_explanations("## Reasons\nOnly a paragraph.").explanations == ["Only a paragraph."]


@pytest.mark.parametrize("answer", ["", "   \n\n", "1.\n2.", "Reasons:\n"])
def test_unparseable_answers_are_not_ok(answer):
    res = parse_explanations(answer)
    assert not res.ok
    assert res.explanations == []
    assert res.style == "empty"


def test_crlf_line_ends():
    assert parse_explanations("* one\r\n* two\r\n").explanations == ["one", "two"]


def test_bad_options_and_input():
    with pytest.raises(ValueError, match="unknown list markers"):
        ParseOptions(markers=("#",))
    with pytest.raises(ValueError):
        ParseOptions(unmarked_lines="maybe")
    with pytest.raises(TypeError):
        parse_explanations(None)


def test_real_answers_from_the_data_pack(data_dir):
    """A few released raw generations, end to end (template stripped, then parsed)."""
    llama = {
        (r["item_index"], r["label"]): r for r in read_released_generations(data_dir, "llama3", n_items=2)
    }
    row = llama[(0, "e")]
    assert row["raw_text"].startswith("<|begin_of_text|>") and row["complete"]
    res = parse_explanations(row["answer"], LLAMA3)
    assert len(res.explanations) == 6
    assert res.explanations[0] == 'There is no mention of "small lepers" in the context, only "ladies".'
    assert res.dropped == [
        "Here are the possible explanations why the statement is NOT true (no entailment):"
    ]

    mixtral = {
        (r["item_index"], r["label"]): r for r in read_released_generations(data_dir, "mixtral", n_items=1)
    }
    row = mixtral[(0, "e")]
    assert row["answer"].startswith(" 1. The building is airy")
    assert not row["answer"].endswith("</s>") and row["complete"]
    assert len(parse_explanations(row["answer"], MIXTRAL).explanations) == 4


def test_strip_template():
    llama = (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nPrompt<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n* one<|eot_id|>"
    )
    assert strip_template("llama3", llama) == "\n\n* one"
    assert strip_template("Mixtral", "<s> [INST] Prompt [/INST] 1. one</s>") == " 1. one"
    assert strip_template("mixtral", "<s> [INST] Prompt [/INST] 1. cut") == " 1. cut"
    assert strip_template("gpt4o", "- one\n- two") == "- one\n- two"
