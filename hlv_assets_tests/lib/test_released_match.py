"""The released selection files are reproduced from the released raw generations (SPEC §2).

For each of the 18 files (3 generators x 6 sets) the raw answers are parsed with the generator's published
convention (RELEASED_PARSE_OPTIONS), selected (RELEASED_SELECTION_OPTIONS) and compared item by item with
the released file. An item matches when the multiset of (text, letter) pairs is identical; texts are
compared verbatim, with no whitespace normalisation (GPT4o's released texts keep their line end, and our
GPT4o parse keeps it too). `python -m hlv_assets.lib.released` prints the table and every mismatch.
"""

from __future__ import annotations

import json

import pytest

from hlv_assets.lib.released import (
    MISMATCH_CATEGORIES,
    RELEASED_MODELS,
    SET_NAMES,
    DataFormatError,
    classify_mismatch,
    format_match_table,
    match_table,
    read_items,
    read_released_generations,
    read_released_selection,
    selection_path,
)

#: SPEC §2 holds every file to at least 90 %; the published conventions reach 100 % on 17 files.
SPEC_FLOOR = 0.90
#: What this implementation reaches (a regression guard): one Mixtral lf-longest item keeps its list
#: number "23." in the released file, nowhere else in the 6,138 items.
EXPECTED_FLOOR = 0.997
KNOWN_MISMATCHES = {("mixtral", "lf-longest", 212): "list marker kept"}


@pytest.fixture(scope="module")
def table(data_dir):
    return match_table(data_dir)


def test_every_released_file_is_reproduced(table):
    assert len(table) == 18
    report = format_match_table(table)
    for row in table:
        assert row["n_items"] == 341
        assert row["rate"] >= SPEC_FLOOR, report
        assert row["rate"] >= EXPECTED_FLOOR, report
        assert row["n_parse_failed"] == 0
        for m in row["mismatches"]:
            key = (row["model"], row["set"], m["item_index"])
            assert KNOWN_MISMATCHES.get(key) == m["category"], report
            assert m["category"] in MISMATCH_CATEGORIES
    # matches are exact in slot order as well, not only as multisets
    assert all(row["n_ordered_match"] == row["n_match"] for row in table)


def test_read_released_generations(data_dir):
    for slug in RELEASED_MODELS:
        rows = read_released_generations(data_dir, slug)
        assert len(rows) == 341 * 3
        assert [(r["item_index"], r["label"]) for r in rows[:4]] == [(0, "e"), (0, "n"), (0, "c"), (1, "e")]
        for r in rows:
            assert r["answer"] in r["raw_text"]
            assert "<|eot_id|>" not in r["answer"] and "[/INST]" not in r["answer"]
            assert "</s>" not in r["answer"][-4:]
    llama = read_released_generations(data_dir, "Llama3")
    assert sum(not r["complete"] for r in llama) == 1  # 228/N was cut at the token limit
    mixtral = read_released_generations(data_dir, "mixtral")
    assert sum(not r["complete"] for r in mixtral) == 289


def test_read_released_selection_all_files(data_dir):
    items = read_items(data_dir)
    assert len(items) == 341
    sizes = {"lf": 3, "varierr-lg": 4, "mnli-lg": 5}
    for slug in RELEASED_MODELS:
        for set_name in SET_NAMES:
            rows = read_released_selection(data_dir, slug, set_name)
            assert len(rows) == 341
            k = sizes[set_name.rsplit("-", 1)[0]]
            assert all(len(r["explanations"]) == k for r in rows)
            assert rows[0]["premise"] == items[0]["premise"]
    assert selection_path(data_dir, "llama3", "mnli-lg-longest").name == "MNLI-label-Guided-longest.json"
    assert selection_path(data_dir, "gpt4o", "mnli-lg-longest").name == "MNLI-Label-Guided-longest.json"
    keys = {read_released_selection(data_dir, "llama3", s)[0]["key"] for s in SET_NAMES}
    assert keys == {"machine_comments", "machine_replaced_comments", "machine_generated_comments"}


def _fake_pack(tmp_path, model="GPT4o"):
    root = tmp_path / "mjd_estimator"
    (root / "MJD-generator").mkdir(parents=True)
    item = {
        "premise": "p",
        "hypothesis": "h",
        "mnli labels": ["e", [5, 0, 0]],
        "chaos probs": [1.0, 0.0, 0.0],
        "varierr labels": [4, 0, 0],
        "comments": [["x", "e"]] * 4,
    }
    (root / "MJD-generator" / "NLI_explanations.json").write_text(json.dumps(item) + "\n")
    main = root / "Model-Explanation" / f"{model}-explanations" / f"{model}-model-explanation-main"
    main.mkdir(parents=True)
    return tmp_path, main


def test_malformed_selection_names_file_line_and_field(tmp_path):
    data_dir, main = _fake_pack(tmp_path)
    path = main / "Label-Free-first.json"
    good = {"premise": "p", "hypothesis": "h", "machine_comments": [["a", "e"], ["b", "n"], ["c", "c"]]}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "machine_comments": [["a", "x"]]}) + "\n")
    with pytest.raises(DataFormatError) as err:
        read_released_selection(data_dir, "gpt4o", "lf-first")
    assert err.value.line == 2 and err.value.field == "machine_comments[0]"
    assert str(path) in str(err.value)
    path.write_text("{not json\n")
    with pytest.raises(DataFormatError, match=":1: field '<json>'"):
        read_released_selection(data_dir, "gpt4o", "lf-first")
    path.write_text(json.dumps({"premise": "p", "hypothesis": "h"}) + "\n")
    with pytest.raises(DataFormatError, match="machine_comments"):
        read_released_selection(data_dir, "gpt4o", "lf-first")
    with pytest.raises(DataFormatError, match="missing released selection file"):
        read_released_selection(data_dir, "gpt4o", "mnli-lg-longest")
    with pytest.raises(ValueError, match="unknown released model"):
        read_released_selection(data_dir, "claude", "lf-first")
    with pytest.raises(ValueError, match="unknown explanation set"):
        read_released_selection(data_dir, "gpt4o", "lf-random")


def test_missing_or_malformed_raw_generation(tmp_path):
    data_dir, _ = _fake_pack(tmp_path, "Mixtral")
    with pytest.raises(DataFormatError, match="missing raw generation for item 0, label e"):
        read_released_generations(data_dir, "mixtral")
    raw = tmp_path / "mjd_estimator/Model-Explanation/Mixtral-explanations/Mixtral-raw-output/0"
    raw.mkdir(parents=True)
    for label in "ENC":
        (raw / label).write_text("no template here")
    with pytest.raises(DataFormatError, match=r"\[INST\] template"):
        read_released_generations(data_dir, "mixtral")


def test_classify_mismatch():
    parsed = {"e": ["A", "BB", "CC"], "n": [], "c": []}
    assert classify_mismatch([("A\n", "e")], [("A", "e")], parsed) == "whitespace"
    ours, cyclic = [("A", "e"), ("BB", "e"), ("A", "e"), ("A", "e")], [("A", "e"), ("BB", "e")] * 2
    assert classify_mismatch(ours, cyclic, parsed) == "padding"
    assert classify_mismatch([("BB", "e")], [("CC", "e")], parsed) == "length tie"
    assert classify_mismatch([("BB", "e")], [("A", "e")], parsed) == "selection"
    assert classify_mismatch([("BB", "e")], [("3. CC", "e")], parsed) == "list marker kept"
    assert classify_mismatch([("BB", "e")], [("Intro:", "e")], parsed) == "not in our parse"
