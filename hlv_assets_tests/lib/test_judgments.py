"""MJD prompts, option and explanation orders, conversions and averaging (SPEC §3); pure Python, no model."""

from __future__ import annotations

import json
import math
import re

import pytest

from hlv_assets.lib import judgments as J
from hlv_assets.lib.paths import REPO_ROOT

SPEC = REPO_ROOT.parent / "shared" / "docs" / "SPEC.md"
EXPLANATIONS = [["ex one.", "e"], ["ex two", "n"], ["ex three ", "c"], ["ex four", "n"]]


def _spec_templates() -> list[str]:
    """The indented code blocks of SPEC §3, with the written ``\\n`` turned into newlines."""
    assert SPEC.is_file(), f"no SPEC at {SPEC}: ../shared/docs must sit beside the repository"
    section = SPEC.read_text().split("## 3.")[1].split("## 4.")[0]
    blocks = re.findall(r"^    (Please .+)$", section, flags=re.M)
    return [b.replace("\\n", "\n") for b in blocks]


def test_templates_are_the_spec_verbatim():
    plain, with_comments = _spec_templates()
    assert J.PLAIN_TEMPLATE == plain
    assert J.EXPLANATION_TEMPLATE == with_comments


def test_plain_prompt_exact_text():
    got = J.mjd_prompt("P.", "H.", (1, 0, 2))
    assert got == (
        "Please determine whether the following statement is true (entailment), undetermined (neutral), or false "
        "(contradiction) given the context below and select ONE of the listed options and start your answer with "
        "a single letter. \nContext: P. \nStatement: H. \nA. Neutral \nB. Entailment \nC. Contradiction. \nAnswer:"
    )


def test_explanation_prompts_plain_and_explicit():
    got = J.mjd_prompt("P.", "H.", (0, 1, 2), EXPLANATIONS[:2])
    assert got.endswith(
        "\nContext: P. \nStatement: H. \nComment 1: ex one. \nComment 2: ex two \nA. Entailment \nB. Neutral "
        "\nC. Contradiction. \nAnswer:"
    )
    assert got.startswith("Please carefully and fairly base your selection on the comments below")
    explicit = J.mjd_prompt("P.", "H.", (2, 1, 0), EXPLANATIONS[1:3], explicit=True)
    comments = "\nComment 1: ex two So I choose Neutral. \nComment 2: ex three  So I choose Contradiction. "
    assert comments + "\nA. " in explicit
    assert explicit.endswith("\nA. Contradiction \nB. Neutral \nC. Entailment. \nAnswer:")
    with pytest.raises(ValueError, match="label"):
        J.mjd_prompt("P.", "H.", (0, 1, 2), ["no label"], explicit=True)
    assert J.mjd_prompt("P.", "H.", (0, 1, 2), []) == J.mjd_prompt("P.", "H.")


def test_option_orders_are_the_notebooks():
    # MJD-generator.ipynb: option words per order and the Llama-3 token ids (32, 33, 34 = A, B, C) it read
    # for E, N, C in that order.
    notebook = [
        (["Entailment", "Neutral", "Contradiction"], [32, 33, 34]),
        (["Entailment", "Contradiction", "Neutral"], [32, 34, 33]),
        (["Neutral", "Entailment", "Contradiction"], [33, 32, 34]),
        (["Neutral", "Contradiction", "Entailment"], [34, 32, 33]),
        (["Contradiction", "Entailment", "Neutral"], [33, 34, 32]),
        (["Contradiction", "Neutral", "Entailment"], [34, 33, 32]),
    ]
    assert len(J.OPTION_ORDERS) == 6
    for order, (words, ids) in zip(J.OPTION_ORDERS, notebook, strict=True):
        assert [J.OPTION_WORDS[i] for i in order] == words
        letter_scores = [100.0, 200.0, 300.0]  # A, B, C
        assert J.to_label_order(letter_scores, order) == [letter_scores[t - 32] for t in ids]


def test_explanation_orders():
    assert len(J.explanation_orders(4)) == 24
    assert len(J.explanation_orders(3)) == 6
    assert len(J.explanation_orders(5)) == 120
    assert J.explanation_orders(4, r=1) == [(0,), (1,), (2,), (3,)]
    assert J.explanation_orders(0) == [()]
    sample = J.explanation_orders(4, sample=5, seed=3)
    assert sample == J.explanation_orders(4, sample=5, seed=3)
    assert len(set(sample)) == 5 and set(sample) <= set(J.explanation_orders(4))
    assert sample == sorted(sample)
    assert J.explanation_orders(4, sample=5, seed=4) != sample
    assert J.explanation_orders(3, sample=50) == J.explanation_orders(3)
    big = J.explanation_orders(10, sample=7, seed=1)  # 10! arrangements: sampled without enumerating
    assert len(set(big)) == 7 and all(sorted(p) == list(range(10)) for p in big)
    with pytest.raises(ValueError):
        J.explanation_orders(3, r=4)


def test_prompt_grid_metadata():
    plain = J.prompt_grid("P.", "H.", item="u1")
    assert [p.option_order for p in plain] == list(J.OPTION_ORDERS)
    assert {(p.item, p.variant, p.explanation_order) for p in plain} == {("u1", "plain", ())}
    grid = J.prompt_grid("P.", "H.", EXPLANATIONS, item=7)
    assert len(grid) == 24 * 6 and len({p.prompt for p in grid}) == 144
    assert grid[0].explanation_order == (0, 1, 2, 3) and grid[6].explanation_order == (0, 1, 3, 2)
    first = grid[7]
    assert first.prompt == J.mjd_prompt(
        "P.", "H.", first.option_order, [EXPLANATIONS[k] for k in (0, 1, 3, 2)]
    )
    sampled = J.prompt_grid("P.", "H.", EXPLANATIONS, orders=2, seed=0, explicit=True)
    assert len(sampled) == 12 and {p.variant for p in sampled} == {"explicit"}
    assert "So I choose" in sampled[0].prompt


def test_normalize():
    assert J.normalize([1.0, 1.0, 2.0]) == [0.25, 0.25, 0.5]
    assert J.normalize([31.0, 32.0, 33.0]) == pytest.approx([31 / 96, 32 / 96, 33 / 96], abs=1e-15)
    with pytest.raises(J.ConversionError, match="log-probabilities"):
        J.normalize([-0.1, -2.0, -3.0], kind="logprobs")
    with pytest.raises(J.ConversionError, match="positive"):
        J.normalize([1.0, 0.0, 2.0])
    with pytest.raises(J.ConversionError, match="positive"):
        J.normalize([-1.0, 3.0, 2.0])
    with pytest.raises(J.MissingScoreError):
        J.normalize([1.0, None, 2.0])
    with pytest.raises(J.ConversionError, match="non-finite"):
        J.normalize([1.0, math.nan, 2.0])


def test_softmax():
    got = J.softmax([20.0, 0.0, 0.0])
    e = math.e
    assert got == pytest.approx([e / (e + 2), 1 / (e + 2), 1 / (e + 2)], abs=1e-15)
    assert J.softmax([1.0, 2.0, 3.0], temperature=1.0) == pytest.approx(
        [math.exp(k) / (math.exp(1) + math.exp(2) + math.exp(3)) for k in (1, 2, 3)], abs=1e-15
    )
    logits = [31.2, 32.5, 30.1]
    logz = 35.0
    assert J.softmax([x - logz for x in logits]) == pytest.approx(J.softmax(logits), abs=1e-15)
    assert J.convert([x - logz for x in logits], "softmax", kind="logprobs") == pytest.approx(
        J.softmax(logits)
    )
    with pytest.raises(J.MissingScoreError, match="letter"):
        J.softmax([None, 1.0, 2.0])
    with pytest.raises(J.ConversionError):
        J.softmax([1.0, 2.0, 3.0], temperature=0)
    with pytest.raises(ValueError, match="unknown conversion"):
        J.convert([1.0, 2.0, 3.0], "argmax")  # type: ignore[arg-type]


class ContentAwareStub:
    """A stand-in judge that reads the options of each prompt: the letter showing label l gets LOGITS[l]."""

    LOGITS = {"Entailment": 33.0, "Neutral": 31.5, "Contradiction": 30.25}

    def label_logits(self, prompts, letters=("A", "B", "C")):
        from hlv_assets.llm.base import LabelScores

        out = []
        for prompt in prompts:
            shown = re.search(r"\nA\. (\w+) \nB\. (\w+) \nC\. (\w+)\. \nAnswer:$", prompt).groups()
            out.append(LabelScores(scores=[self.LOGITS[w] for w in shown], kind="logits", letters=letters))
        return out


@pytest.mark.parametrize("conversion", ["normalize", "softmax"])
def test_known_letter_logits_give_the_expected_mjd(conversion):
    grid = J.prompt_grid("P.", "H.", item="a") + J.prompt_grid("P2.", "H2.", EXPLANATIONS[:3], item="b")
    records = J.records_from_scores(grid, ContentAwareStub().label_logits([p.prompt for p in grid]))
    assert {r.option_order for r in records} == set(J.OPTION_ORDERS)
    enc = [ContentAwareStub.LOGITS[w] for w in J.OPTION_WORDS]
    expected = J.normalize(enc) if conversion == "normalize" else J.softmax(enc, 20.0)
    for record in records:  # every option order maps back to the same [E, N, C]
        assert J.prompt_distribution(record, conversion) == pytest.approx(expected, abs=1e-15)
    mjd = J.mjd_from_scores(records, conversion)
    assert list(mjd) == ["a", "b"]
    for dist in mjd.values():
        assert dist == pytest.approx(expected, abs=1e-15)
        assert math.fsum(dist) == pytest.approx(1.0, abs=1e-15)


def test_averaging_over_orders_and_missing_scores():
    def record(order, scores, item="x", kind="logits"):
        return J.JudgmentRecord(item, order, (), "plain", scores, kind)

    # A letter-position bias (A always 3, B 2, C 1) averages out to uniform over the 6 orders.
    biased = [record(o, [3.0, 2.0, 1.0]) for o in J.OPTION_ORDERS]
    for conversion in ("normalize", "softmax"):
        assert J.mjd_from_scores(biased, conversion)["x"] == pytest.approx([1 / 3] * 3, abs=1e-15)
    two = [record((0, 1, 2), [1.0, 1.0, 2.0]), record((2, 1, 0), [1.0, 1.0, 2.0])]
    assert J.mjd_from_scores(two, "normalize")["x"] == pytest.approx([0.375, 0.25, 0.375])
    holes = two + [record((0, 1, 2), [1.0, None, 2.0])]
    with pytest.raises(J.MissingScoreError):
        J.mjd_from_scores(holes)
    assert J.mjd_from_scores(holes, "normalize", missing="skip") == J.mjd_from_scores(two, "normalize")
    assert J.count_missing(holes) == {"x": 1}
    with pytest.raises(J.MissingScoreError, match="every one"):
        J.mjd_from_scores([record((0, 1, 2), [None, None, None], item="y")], missing="skip")
    logprobs = [record((0, 1, 2), [-0.5, -1.5, -3.0], kind="logprobs")]
    with pytest.raises(J.ConversionError, match="log-probabilities"):
        J.mjd_from_scores(logprobs, "normalize")
    assert J.mjd_from_scores(logprobs, "softmax")["x"] == pytest.approx(J.softmax([-0.5, -1.5, -3.0]))


def test_records_round_trip_through_json():
    from hlv_assets.llm.base import LabelScores

    grid = J.prompt_grid("P.", "H.", EXPLANATIONS[:2], item="u")
    scores = [
        LabelScores(scores=[31.0, 32.0, None], kind="logits", token_ids=[49, 50, 51], letter_mass=0.8)
        for _ in grid
    ]
    records = J.records_from_scores(grid, scores)
    back = [J.JudgmentRecord.from_dict(json.loads(json.dumps(r.as_dict()))) for r in records]
    assert back == records
    with pytest.raises(ValueError, match="prompts"):
        J.records_from_scores(grid, scores[:-1])
