"""The per-judge rule for letters missing from a top-k API answer (`missing_letters`): the numbers of the issue's
worked example at T = 20, computed here by hand, the refusal, the registry option and where the rule is recorded
(judgment records, comparison rows, the audit, the report)."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from hlv_assets.lib import judgments as J
from hlv_assets.lib.mjd_run import missing_letter_refusal, mjd_frames
from hlv_assets.llm.base import LabelScores
from hlv_assets.llm.registry import LLMSpec, SpecError, build_backend

T = 20.0
A, B, FLOOR = -0.01, -5.0, -12.0  # the issue: C missing from the top-k list (its true value -20)


def by_hand(*logprobs: float) -> list[float]:
    """softmax(x / T), written out."""
    weights = [math.exp(x / T) for x in logprobs]
    return [w / sum(weights) for w in weights]


def record(rule: str, scores=(A, B, None), order=(0, 1, 2), item="u7", floor=FLOOR) -> J.JudgmentRecord:
    return J.JudgmentRecord(item, order, (), "plain", list(scores), "logprobs", missing_letters=rule,
                            top_k_floor=floor)


def test_the_issues_worked_example():
    # what the issue prints, to three places
    assert [round(p, 3) for p in by_hand(A, B, -20.0)] == [0.466, 0.363, 0.171]
    floor = J.prompt_distribution(record("floor"), "softmax", T)
    assert [round(p, 3) for p in floor] == [0.430, 0.335, 0.236]
    assert floor == pytest.approx(by_hand(A, B, FLOOR), abs=1e-12)
    renorm = J.prompt_distribution(record("renormalize"), "softmax", T)
    assert [round(p, 3) for p in renorm] == [0.562, 0.438, 0.0]
    assert renorm == pytest.approx([*by_hand(A, B), 0.0], abs=1e-12) and renorm[2] == 0.0
    with pytest.raises(J.MissingScoreError) as refused:
        J.prompt_distribution(record("refuse"), "softmax", T)
    message = str(refused.value)
    assert "'u7'" in message and "letter(s) C" in message and "refuse" in message and "\n" not in message


def test_the_rule_follows_the_letters_into_label_order_and_the_mean():
    # letters A, B, C show Contradiction, Entailment, Neutral: C (missing) is Neutral
    shuffled = record("floor", order=(2, 0, 1))
    c, e, n = by_hand(A, B, FLOOR)
    assert J.prompt_distribution(shuffled, "softmax", T) == pytest.approx([e, n, c], abs=1e-12)
    full = record("floor", scores=(-1.0, -2.0, -3.0))  # nothing missing: the rule changes nothing
    assert J.prompt_distribution(full, "softmax", T) == pytest.approx(by_hand(-1.0, -2.0, -3.0), abs=1e-12)
    mjd = J.mjd_from_scores([shuffled, full], "softmax", T)["u7"]
    f = by_hand(-1.0, -2.0, -3.0)
    assert mjd == pytest.approx([(e + f[0]) / 2, (n + f[1]) / 2, (c + f[2]) / 2], abs=1e-12)


def test_what_cannot_be_filled_is_refused():
    with pytest.raises(J.MissingScoreError, match="no top-k floor"):
        J.prompt_distribution(record("floor", floor=None), "softmax", T)
    with pytest.raises(J.MissingScoreError, match="every letter is missing"):
        J.prompt_distribution(record("renormalize", scores=(None, None, None)), "softmax", T)
    with pytest.raises(ValueError, match="refuse, renormalize, floor"):
        J.records_from_scores([], [], missing_letters="zero")
    # normalize (p = l / sum l) stays refused on log-probabilities whatever the rule
    frame, refused = mjd_frames([record("renormalize")], T)
    assert set(frame.conversion) == {"softmax"} and "raw logits" in refused["normalize"]


def test_records_carry_the_rule_and_the_floor_and_refusal_names_item_and_letter():
    grid = J.prompt_grid("p", "h", None, item="u1") + J.prompt_grid("p2", "h2", None, item="u2")
    scores = [LabelScores(scores=[A, B, None] if i == 8 else [A, B, -3.0], kind="logprobs", top_k_floor=FLOOR)
              for i in range(len(grid))]
    records = J.records_from_scores(grid, scores, missing_letters="refuse")
    assert {r.missing_letters for r in records} == {"refuse"} and records[8].top_k_floor == FLOOR
    assert records[8].as_dict()["missing_letters"] == "refuse"
    assert J.JudgmentRecord.from_dict(records[8].as_dict()) == records[8]  # the stored artifact round-trips
    line = missing_letter_refusal(records)
    assert line.startswith("item 'u2' (option order [1, 0, 2]): no score for letter C")
    assert "1 of 12 prompts of 1 items" in line and "missing_letters=renormalize or floor" in line
    assert missing_letter_refusal(J.records_from_scores(grid, scores, missing_letters="floor")) is None
    old = records[8].as_dict()
    del old["missing_letters"], old["top_k_floor"]  # a record stored before the rule existed
    assert J.JudgmentRecord.from_dict(old).missing_letters == "refuse"


def test_registry_option():
    spec = LLMSpec(slug="api", backend="openai", model="m", options={"api_key_env": "", "missing_letters": "floor"})
    assert spec.missing_letters() == "floor"
    assert LLMSpec(slug="api", backend="openai", model="m").missing_letters() == "refuse"
    backend = build_backend(spec)  # a judging option, never passed to the backend nor part of its identity
    assert "missing_letters" not in backend.identity().as_dict()["extra"]
    with pytest.raises(SpecError) as bad:
        LLMSpec(slug="api", backend="openai", model="m", options={"missing_letters": "zero"})
    assert str(bad.value) == ("LLM 'api': option missing_letters='zero': expected one of refuse, renormalize, "
                              "floor")
    with pytest.raises(SpecError, match="unknown options"):  # a local model returns every letter
        LLMSpec(slug="local", backend="transformers", model="m", options={"missing_letters": "floor"})


def test_comparison_rows_record_the_rule_read_from_the_stored_records(tmp_path):
    from hlv_assets.defs.judgments.compare import judged_missing_letters, mjd_rows
    from hlv_assets.store.db import get_engine
    from hlv_assets.store.results import ResultStore

    store = ResultStore(get_engine(f"sqlite:///{tmp_path / 'hlv.db'}"))
    assert judged_missing_letters(store, "none|api", "tiny") is None
    lineage = {"run_id": "r", "code_version": "c", "inputs_sha256": "i"}
    store.replace_artifacts("judgment", [("u1|0", record("floor").as_dict())], asset_key="mjd",
                            partition_key="none|api", profile="tiny", lineage=lineage)
    old = record("refuse").as_dict()
    del old["missing_letters"]
    store.replace_artifacts("judgment", [("u1|0", old)], asset_key="mjd", partition_key="none|old",
                            profile="tiny", lineage=lineage)
    assert judged_missing_letters(store, "none|api", "tiny") == "floor"
    assert judged_missing_letters(store, "none|old", "tiny") == "refuse"
    hjd = pd.DataFrame({"uid": ["u7"], "p_e": [0.5], "p_n": [0.3], "p_c": [0.2]})
    mjd = pd.DataFrame({"uid": ["u7"], "conversion": ["softmax"], "p_e": [0.43], "p_n": [0.335], "p_c": [0.235]})
    rows, _ = mjd_rows(hjd, mjd, profile="tiny", judge="api", explanations="none", item_set="hlv341",
                       missing_letters="floor")
    assert rows[0]["data"]["missing_letters"] == "floor"


class _TopKJudge:
    """A backend answering like a top-k API: the letter showing Entailment -0.01, Neutral -5, Contradiction
    absent from the list (whose smallest is -12)."""

    capabilities = frozenset({"label_logits"})

    def identity(self):
        from hlv_assets.llm.base import LLMIdentity

        return LLMIdentity("openai", "top-k-judge")

    def label_logits(self, prompts, letters=("A", "B", "C")):
        by_word = {"Entailment": A, "Neutral": B, "Contradiction": None}
        out = []
        for prompt in prompts:
            shown = dict(re.findall(r"\n([ABC])\. (Entailment|Neutral|Contradiction)", prompt))
            out.append(LabelScores(scores=[by_word[shown[x]] for x in letters], kind="logprobs", top_k_floor=FLOOR))
        return out


def _partition(rule: str, stored: list):
    """`judge_partition` of the `mjd` asset for judge `api` on two items, with plain fakes around it."""
    from types import SimpleNamespace

    import dagster as dg

    from hlv_assets.defs.judgments.run import JudgeConfig, judge_partition
    from hlv_assets.llm.cache import CachedLLM
    from hlv_assets.llm.callstore import MemoryCallStore

    spec = LLMSpec(slug="api", backend="openai", model="m", options={"api_key_env": "", "missing_letters": rule})
    llm = CachedLLM(_TopKJudge(), MemoryCallStore())
    store = SimpleNamespace(replace_artifacts=lambda kind, records, **kw: stored.extend(records))
    context = SimpleNamespace(partition_key="none|api", log=SimpleNamespace(info=lambda *a: None),
                              run=SimpleNamespace(run_id="run-1", tags={}), asset_key=dg.AssetKey("mjd"),
                              assets_def=SimpleNamespace(code_versions_by_key={}))
    items = pd.DataFrame({"uid": ["a", "b"], "premise": ["p", "q"], "hypothesis": ["h", "k"],
                          "explanations": [[], []]})
    return judge_partition(
        context, JudgeConfig(), items, judge_slug="api", asset_key="mjd", item_set="hlv341",
        input_name="explanation_sets", results=SimpleNamespace(store=lambda: store),
        settings=SimpleNamespace(get=lambda: SimpleNamespace(mjd_items=None, explanation_orders=None), profile="tiny"),
        llms=SimpleNamespace(spec=lambda slug: spec, cached=lambda slug, profile, progress=None: llm))


def test_a_refusing_judge_fails_its_partition_in_one_line_and_stores_nothing():
    import dagster as dg

    stored: list = []
    with pytest.raises(dg.Failure) as failed:
        list(_partition("refuse", stored))
    assert failed.value.description.startswith(
        "mjd[api/none]: item 'a' (option order [0, 1, 2]): no score for letter C")
    assert "12 of 12 prompts of 2 items" in failed.value.description and stored == []


def test_a_floor_judge_stores_its_rule_with_every_record_and_in_the_metadata():
    import dagster as dg

    stored: list = []
    events = list(_partition("floor", stored))
    output = next(e for e in events if isinstance(e, dg.Output))
    assert output.metadata["missing_letters"].value == "floor"
    assert output.metadata["prompts_missing_letters"].value == 12
    assert len(stored) == 12 and {r["missing_letters"] for _, r in stored} == {"floor"}
    assert {r["top_k_floor"] for _, r in stored} == {FLOOR}
    softmax = output.value[output.value.conversion == "softmax"].set_index("uid")
    for uid in ("a", "b"):  # Contradiction gets the floor in every order: the issue's [.430 .335 .236]
        assert list(softmax.loc[uid, ["p_e", "p_n", "p_c"]]) == pytest.approx(by_hand(A, B, FLOOR), abs=1e-12)
