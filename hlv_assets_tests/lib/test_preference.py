"""Validated Llama3 explanations (xlsx): parsing, validation errors, shares, greedy/representative selection."""

from __future__ import annotations

from collections import Counter

import pytest

from hlv_assets.lib import preference as P
from hlv_assets.lib.released import read_items
from hlv_assets.lib.validation import DataFormatError


@pytest.fixture(scope="module")
def rows(data_dir):
    return P.read_validated_explanations(P.validated_path(data_dir))


@pytest.fixture(scope="module")
def human(data_dir):
    return [[tuple(c) for c in it["comments"]] for it in read_items(data_dir)]


def test_parses_1581_rows_over_100_items(rows, data_dir):
    assert len(rows) == 1581
    assert sorted({x.item for x in rows}) == list(range(100))
    assert Counter(x.label_name for x in rows) == {
        "Neutral": 597,
        "Contradiction": 494,
        "Entailment": 468,
        "NotEntailment": 22,
    }
    assert Counter(x.label for x in rows) == {"n": 597, "c": 494, "e": 490}
    assert Counter(x.position for x in rows)[1] == 298 and max(x.position for x in rows) == 10
    first = rows[0]
    assert (first.sheet_row, first.item, first.llm_label, first.label, first.position) == (
        4,
        0,
        "NotEntailment-1",
        "e",
        1,
    )
    assert first.text.startswith('There is no mention of "small lepers"')
    assert (first.faithful, first.informative, first.supported, first.label_consistent) == (
        True,
        True,
        "n",
        False,
    )
    by_row = {x.sheet_row: x for x in rows}
    assert not by_row[1351].judged and by_row[1351].label_consistent is None  # the one blank row
    assert by_row[1403].informative is False  # Q2 written "N"
    assert by_row[1636].informative is False  # Q2 written "-"
    assert sum(not x.judged for x in rows) == 1
    # premise/hypothesis agree with NLI_explanations.json (item 38: Excel ate a leading apostrophe)
    assert P.check_against_items(rows, read_items(data_dir)) == []


def test_shares_per_label_and_overall(rows):
    shares = P.preference_shares(rows)
    assert list(shares.index) == ["e", "n", "c", "all"]
    assert shares.loc["all", "n_rows"] == 1581 and shares.loc["all", "n_judged"] == 1580
    for col in ("faithful", "informative", "label_consistent", "supports_any", "preferred"):
        assert ((shares[col] >= 0) & (shares[col] <= 1)).all(), col
    assert shares.loc["all", "faithful"] == pytest.approx(938 / 1580)
    assert shares.loc["all", "label_consistent"] == pytest.approx(557 / 1580)
    assert shares.loc["all", "preferred"] <= min(
        shares.loc["all", ["faithful", "informative", "label_consistent"]]
    )
    names = P.preference_shares(rows, by="label_name")
    assert (
        names.loc["NotEntailment", "label_consistent"] == 0.0
    )  # they argue against the label of their prompt
    loose = P.preference_shares(rows, rule=P.PreferenceRule(label_consistent=False))
    assert loose.loc["all", "preferred"] >= shares.loc["all", "preferred"]


@pytest.mark.parametrize("which", ["preferred", "unpreferred"])
@pytest.mark.parametrize("method", P.METHODS)
def test_selection_deterministic_keeps_labels_per_slot(rows, human, which, method):
    a = P.select_explanations(human, rows, which=which, method=method)
    b = P.select_explanations(human, list(reversed(rows)), which=which, method=method)
    assert a.explanations == b.explanations and a.chosen_rows == b.chosen_rows
    assert a.items == list(range(100)) and a.n_slots == 400
    by_row = {x.sheet_row: x for x in rows}
    rule = P.PreferenceRule()
    for item, expl, chosen, filled in zip(a.items, a.explanations, a.chosen_rows, a.filled, strict=True):
        assert [lab for _, lab in expl] == [lab for _, lab in human[item]]
        picked = [r for r in chosen if r is not None]
        assert len(picked) == len(set(picked))
        for (text, label), r, f, (htext, _) in zip(expl, chosen, filled, human[item], strict=True):
            if f:
                x = by_row[r]
                assert (x.item, x.label, x.text) == (item, label, text) and rule.matches(x, which)
            else:
                assert r is None and text == htext
    assert 0.0 < a.filled_share < 1.0


def test_selection_shares(rows, human):
    share = {
        (w, m): P.select_explanations(human, rows, which=w, method=m).filled_share
        for w in ("preferred", "unpreferred")
        for m in P.METHODS
    }
    assert share[("preferred", "greedy")] == pytest.approx(323 / 400)
    assert share[("preferred", "representative")] == pytest.approx(317 / 400)
    assert share[("unpreferred", "greedy")] == pytest.approx(142 / 400)
    assert share[("unpreferred", "representative")] == pytest.approx(133 / 400)
    for w in ("preferred", "unpreferred"):
        assert share[(w, "greedy")] >= share[(w, "representative")] >= share[(w, "aligned")]


def _x(row, item, label, pos, ok):
    yes = "y" if ok else "n"
    return P.ValidatedExplanation(
        sheet_row=row,
        item=item,
        premise="p",
        hypothesis="h",
        llm_label=f"X-{pos}",
        label_name="X",
        label=label,
        position=pos,
        text=f"{label}{pos}",
        faithful=yes == "y",
        informative=True,
        supported=label,
    )


def test_greedy_representative_aligned_and_fallbacks_on_a_toy_item():
    human = [[("h0", "n"), ("h1", "c"), ("h2", "n")]]
    # n bullets: 1 preferred, 2 preferred, 3 not, 4 preferred; c bullets: 1 not
    rows = [
        _x(10, 0, "n", 1, True),
        _x(11, 0, "n", 2, True),
        _x(12, 0, "n", 3, False),
        _x(13, 0, "n", 4, True),
    ]
    rows.append(_x(20, 0, "c", 1, False))
    greedy = P.select_explanations(human, rows, method="greedy")
    assert greedy.explanations[0] == [("n1", "n"), ("h1", "c"), ("n2", "n")]
    rep = P.select_explanations(human, rows, method="representative")  # n blocks: [1, 2] and [3, 4]
    assert rep.explanations[0] == [("n1", "n"), ("h1", "c"), ("n4", "n")]
    aligned = P.select_explanations(human, rows, method="aligned")
    assert aligned.explanations[0] == [("n1", "n"), ("h1", "c"), ("n2", "n")]
    assert greedy.filled == [[True, False, True]] and greedy.filled_share == pytest.approx(2 / 3)
    assert greedy.share_by_label(human) == {"n": 1.0, "c": 0.0}
    anyfb = P.select_explanations(human, rows, fallback="any")
    assert anyfb.explanations[0][1] == ("c1", "c") and anyfb.filled[0][1] is False
    drop = P.select_explanations(human, rows, fallback="drop")
    assert drop.explanations[0] == [("n1", "n"), ("n2", "n")]
    unpref = P.select_explanations(human, rows, which="unpreferred")
    assert unpref.explanations[0] == [("n3", "n"), ("c1", "c"), ("h2", "n")]
    with pytest.raises(ValueError):
        P.select_explanations(human, rows, method="best")


def _write_xlsx(path, data_rows, header=None):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(
        header
        or [
            "ID",
            "Context/Premise",
            "Statement/Hypothesis",
            "LLM-Label",
            "LLM-Explanation",
            "Q1-x",
            "Q2-y",
            "Q3-z",
        ]
    )
    for r in data_rows:
        ws.append(r)
    wb.save(path)
    return path


GOOD = [0, "A man sleeps.", "A man rests.", "Entailment-1", "Sleeping is resting.", "y", "y", "E"]


def test_small_workbook_and_errors_name_sheet_row_and_column(tmp_path):
    ok = _write_xlsx(
        tmp_path / "ok.xlsx", [GOOD, [None] * 8, [*GOOD[:3], "Neutral-2", "Maybe.", "Y", "n", "-"]]
    )
    rows = P.read_validated_explanations(ok)
    assert [(x.sheet_row, x.label, x.position, x.informative, x.supported) for x in rows] == [
        (2, "e", 1, True, "e"),
        (4, "n", 2, False, "-"),
    ]
    cases = [
        ([GOOD, [*GOOD[:5], "maybe", "y", "E"]], 3, "F Q1"),
        ([[*GOOD[:3], "Entail-1", *GOOD[4:]]], 2, "D LLM-Label"),
        ([[*GOOD[:3], "Entailment", *GOOD[4:]]], 2, "D LLM-Label"),
        ([["x", *GOOD[1:]]], 2, "A ID"),
        ([[100, *GOOD[1:]]], 2, "A ID"),
        ([[*GOOD[:7], "X"]], 2, "H Q3"),
        ([[*GOOD[:6], None, "E"]], 2, "G Q2"),
        ([[*GOOD[:4], None, *GOOD[5:]]], 2, "E LLM-Explanation"),
        ([GOOD, GOOD], 3, "D LLM-Label"),  # duplicate (item, label, position)
    ]
    for k, (data, line, field) in enumerate(cases):
        path = _write_xlsx(tmp_path / f"bad{k}.xlsx", data)
        with pytest.raises(DataFormatError) as err:
            P.read_validated_explanations(path)
        assert (err.value.line, err.value.field) == (line, field), (k, str(err.value))
        assert "[Sheet1]" in str(err.value)
    bad_header = _write_xlsx(tmp_path / "hdr.xlsx", [GOOD], header=["Item", *["x"] * 7])
    with pytest.raises(DataFormatError) as err:
        P.read_validated_explanations(bad_header)
    assert (err.value.line, err.value.field) == (1, "A")
    dash = _write_xlsx(tmp_path / "dash.xlsx", [[*GOOD[:6], "-", "-"]])
    assert P.read_validated_explanations(dash)[0].informative is False
    with pytest.raises(DataFormatError):
        P.read_validated_explanations(dash, dash_in_yes_no="error")
