"""The paper report on a small synthetic store: the poster's values with ours beside them (difference, row id,
asset partition), a reason in every cell we cannot fill, `n` for subsets, the VariErr / MNLI discrepancy, the
figures linked in Markdown and inlined in HTML, and `hlv report -o`."""

from __future__ import annotations

import argparse
import re

import pandas as pd
import pytest

from hlv_assets.lib import paper_numbers as P
from hlv_assets.lib.report import (
    Heading,
    Para,
    ReportOptions,
    Table,
    resolve_judges,
    to_html,
    to_markdown,
)
from hlv_assets.llm.registry import LLMSpec
from hlv_assets.store import registry
from hlv_assets.store.db import get_engine
from hlv_assets.store.report_view import write_report
from hlv_assets.store.results import ResultStore, make_row_id

PROFILE = "demo"
UIDS = ["1n", "2e", "3c"]
LIN = {"run_id": "r", "code_version": "v+demo", "inputs_sha256": "x"}


def _row(table: str, key: dict, data: dict) -> dict:
    return {"row_id": make_row_id(table, key, PROFILE), "items_sha256": data.get("items_sha256", ""), "data": data}


def _dc(source: str, n: int, llm=None, explanations=None, conversion=None, **metrics) -> dict:
    data = {"source": source, "llm": llm, "explanations": explanations, "conversion": conversion, "n": n,
            "items_sha256": f"items{n}", **metrics}
    return _row("distribution_comparison", {k: data[k] for k in ("source", "llm", "explanations", "conversion",
                                                                 "items_sha256")}, data)


@pytest.fixture
def store(tmp_path) -> ResultStore:
    store = ResultStore(get_engine(f"sqlite:///{tmp_path / 'hlv.db'}"))
    for spec in (
        LLMSpec(slug="smollm2-135m", backend="transformers", model="embedded:smollm2-135m"),
        LLMSpec(slug="llama3", backend="released", model="Llama3"),
        LLMSpec(slug="llama3-70b", backend="vllm", model="meta-llama/Meta-Llama-3-70B-Instruct",
                capabilities=("label_logits",)),
    ):
        registry.upsert(store.engine, spec.to_dict())
    baselines = [
        _dc("chaosnli", 341, kl=0.0, jsd=0.0, tvd=0.0, dcor=1.0),
        _dc("varierr", 341, kl=3.60366, jsd=0.28215, tvd=0.28581, dcor=0.68816),
        _dc("mnli", 341, kl=1.24249, jsd=0.20921, tvd=0.21472, dcor=0.79495),
    ]
    store.replace_rows("distribution_comparison", baselines, asset_key="distribution_comparison", partition_key="",
                       profile=PROFILE, lineage=LIN)
    judged = [
        _dc("mjd", 341, "llama3-70b", "human", "normalize", kl=0.2412, jsd=0.2521, tvd=0.2703, dcor=0.7702),
        _dc("mjd", 341, "llama3-70b", "human", "softmax", kl=0.5, jsd=0.5, tvd=0.5, dcor=0.5),
    ]
    store.replace_rows("distribution_comparison", judged, asset_key="mjd_comparison",
                       partition_key="human|llama3-70b", profile=PROFILE, lineage=LIN)
    standin = [_dc("mjd", 3, "smollm2-135m", "human", "softmax", kl=0.33, jsd=0.29, tvd=0.33, dcor=0.75),
               _dc("uniform", 3, kl=0.36, jsd=0.31, tvd=0.35, dcor=0.0)]
    standin[1]["data"]["items_sha256"] = standin[0]["data"]["items_sha256"]
    store.replace_rows("distribution_comparison", standin, asset_key="mjd_comparison",
                       partition_key="human|smollm2-135m", profile=PROFILE, lineage=LIN)
    hjd = pd.DataFrame({"uid": UIDS, "p_e": [0.1, 0.8, 0.1], "p_n": [0.8, 0.1, 0.2], "p_c": [0.1, 0.1, 0.7]})
    mjd = pd.DataFrame({"uid": UIDS, "p_e": [0.3, 0.5, 0.2], "p_n": [0.4, 0.3, 0.3], "p_c": [0.3, 0.2, 0.5]})
    store.replace_distribution(hjd, asset_key="baseline_distributions", partition_key="chaosnli", profile=PROFILE,
                               item_set="hlv341", lineage=LIN)
    store.replace_distribution(mjd, asset_key="mjd:softmax", partition_key="human|smollm2-135m", profile=PROFILE,
                               item_set="hlv341", lineage=LIN)
    replacement = []
    for kind, rs in (("none", [None]), ("model", [0, 2, 4]), ("noise", [0, 2, 4])):
        for r in rs:
            kl = 0.3 if r in (None, 0) else (0.28 if kind == "model" else 0.3 + 0.05 * r)
            replacement.append(_row("replacement", {"kind": kind, "r": r}, {
                "judge": "smollm2-135m", "kind": kind, "r": r, "conversion": "softmax", "n": 3, "kl": kl,
                "jsd": 0.3, "tvd": 0.3, "dcor": 0.5, "model_set": "llama3.varierr-lg-first", "profile": PROFILE}))
    store.replace_rows("replacement", replacement, asset_key="replacement_curves", partition_key="smollm2-135m",
                       profile=PROFILE, lineage=LIN)
    store.replace_rows("preference_selection", [_row("preference_selection", {"set": "preferred-greedy"}, {
        "kind": "selection", "set": "preferred-greedy", "filled_share": 0.8075, "poster_share": 0.7575})],
        asset_key="preference_selection", partition_key="workbook", profile=PROFILE, lineage=LIN)
    store.replace_rows("variability", [_row("variability", {"set": "human"}, {
        "set": "human", "scope": "within", "n": 20, "lex1": 0.32, "lex2": 0.1, "lex3": 0.045, "syn1": 0.71,
        "syn2": 0.31, "syn3": 0.135, "cos": 0.53, "euc": 0.52, "avg": 0.4, "embedder": "all-MiniLM-L6-v2",
        "embedder_fake": False})], asset_key="explanation_variability", partition_key="", profile=PROFILE,
        lineage=LIN)
    return store


def _tables(markdown: str) -> list[list[dict]]:
    """Every Markdown table as a list of {column: cell} rows (duplicate headers keep their position)."""
    out, lines = [], markdown.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows, j = [], i + 2
            while j < len(lines) and lines[j].startswith("| "):
                cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", lines[j])[1:-1]]
                rows.append({f"{k}:{h}": c for k, (h, c) in enumerate(zip(header, cells, strict=True))})
                j += 1
            out.append(rows)
    return out


def test_judges_are_matched_by_model_id_or_given():
    llms = [{"slug": "l70", "backend": "vllm", "model": "meta-llama/Meta-Llama-3-70B-Instruct",
             "capabilities": ["label_logits"]},
            {"slug": "llama3", "backend": "released", "model": "Llama3", "capabilities": ["generate"]}]
    assert resolve_judges(llms) == {"Llama3": "l70", "GPT-4o": None}
    assert resolve_judges(llms, {"GPT-4o": "mine"})["GPT-4o"] == "mine"


def test_report_puts_ours_beside_the_papers_values(store, tmp_path):
    result = write_report(store, PROFILE, tmp_path / "out" / "report.md")
    md = result.markdown
    assert result.markdown_path.exists() and result.html_path.exists()
    varierr = store.current_rows("distribution_comparison", PROFILE)[1]
    dist = _tables(md)[1]  # the distribution comparison (after the datasets table)
    row = next(r for r in dist if r["0:distribution"] == "VariErr dist.")
    assert row["1:KL paper"] == "3.604" and row["2:KL ours"] == "3.604" and row["3:Δ"] == "0.000"
    assert row["7:TVD paper"] == "0.296 †" and row["8:TVD ours"] == "0.286" and row["9:Δ"] == "−0.010"
    assert row["14:id"] == varierr.row_id and row["15:asset partition"] == "distribution_comparison"
    human = next(r for r in dist if r["0:distribution"] == "+ human-ex" and r["1:KL paper"] == "0.238")
    assert human["2:KL ours"] == "0.241" and human["3:Δ"] == "+0.003"  # normalize, as published
    assert "(normalize)" in human["14:id"] and human["13:n"] == "341"
    assert human["15:asset partition"] == "mjd_comparison[human|llama3-70b]"
    gpt = next(r for r in dist if r["0:distribution"] == "GPT-4o MJD")
    assert gpt["2:KL ours"] == "n/a: no GPT-4o judge"
    lf = next(r for r in dist if r["0:distribution"] == "+ LF model-ex" and r["1:KL paper"] == "0.295")
    assert lf["2:KL ours"] == "not run: mjd[llama3-70b/llama3.lf-first]"
    for paper in P.MAIN_TABLE:  # every paper value is in the table
        assert any(r["1:KL paper"].startswith(f"{paper.values['kl']:.3f}") for r in dist)


def test_no_cell_of_ours_is_blank_and_every_reason_is_explained(store, tmp_path):
    md = write_report(store, PROFILE, tmp_path / "report.md").markdown
    shorts = set()
    for table in _tables(md):
        for row in table:
            for col, cell in row.items():
                if col.endswith(" ours") and not col.split(":", 1)[1].startswith("share"):
                    assert cell, f"blank cell {col} in {row}"
                    if cell.startswith(("n/a", "not run")):
                        shorts.add(cell)
    assert {"n/a: no GPT-4o judge", "n/a: no BERT checkpoint", "n/a: no RoBERTa checkpoint"} <= shorts
    for short in shorts:  # each reason's full text is under a table
        assert f"**{short}**: " in md
    assert "GPT-4o as the judge through the OpenAI API" in md and "HLV_BERT_MNLI" in md


def test_discrepancy_note_and_subsets(store, tmp_path):
    md = write_report(store, PROFILE, tmp_path / "report.md").markdown
    assert "do not follow from the released data" in md
    for value in ("3.60366", "0.28215", "0.28581", "1.24249", "0.20921", "0.21472", "0.296", "0.281", "0.295"):
        assert value in md
    assert "VariErr dist. TVD: poster 0.296, recomputed (SPEC §7) 0.28581, ours 0.28581: does not follow" in md
    assert "3 of 341 (subset)" in md  # the stand-in judge's MJD on 3 items
    assert "20 of 341 (subset)" in md  # the variability row
    assert "80.75 %" in md and "75.75 %" in md and "+5.00 pp" in md  # the preference share


def test_figures_are_linked_in_markdown_and_inlined_in_html(store, tmp_path):
    result = write_report(store, PROFILE, tmp_path / "r" / "report.md")
    assert set(result.figures) == {"replacement", "ternary"}
    for path in result.figures.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](figures/replacement.png)" in result.markdown and "](figures/ternary.png)" in result.markdown
    html = result.html_path.read_text()
    assert html.count("data:image/png;base64,") == 2 and "figures/" not in html
    assert html.count("<table>") >= 10 and ">n/a: no GPT-4o judge</td>" in html
    assert result.markdown_inline.count("data:image/png;base64,") == 2


def test_empty_store_says_what_to_run(tmp_path):
    store = ResultStore(get_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    md = write_report(store, PROFILE, tmp_path / "report.md").markdown
    assert "not run: distribution_comparison" in md and "not materialized: hlv_items" in md
    assert "Not computed: no `replacement` rows" in md


def test_html_escapes_and_renders_inline_markup():
    blocks = [Heading("A <b> & c"), Para("**bold** `x<y` *it*"), Table(["a|b"], [["1 < 2"]])]
    html = to_html(blocks, "t")
    assert "<h2>A &lt;b&gt; &amp; c</h2>" in html and "<strong>bold</strong>" in html
    assert "<code>x&lt;y</code>" in html and "<em>it</em>" in html and "<td>1 &lt; 2</td>" in html
    assert "| a\\|b |" in to_markdown(blocks)


def test_cli_report_writes_both_files(store, tmp_path, monkeypatch, capsys):
    from hlv_assets.cli import report as cli_report

    monkeypatch.setenv("HLV_DB_URL", str(store.engine.url))
    parser = argparse.ArgumentParser(prog="hlv")
    cli_report.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", "-o", str(tmp_path / "x" / "paper.html"), "--profile", PROFILE,
                              "--judge", "GPT-4o=smollm2-135m"])
    assert args.func(args) == 0
    assert (tmp_path / "x" / "paper.html").exists() and (tmp_path / "x" / "paper.md").exists()
    assert "wrote" in capsys.readouterr().out
    md = (tmp_path / "x" / "paper.md").read_text()
    assert "GPT-4o → `smollm2-135m`" in md
    args = parser.parse_args(["report", "--judge", "Llama3"])
    assert args.func(args) == 2


def test_options_choose_the_set_variant(store, tmp_path):
    md = write_report(store, PROFILE, tmp_path / "report.md", ReportOptions(set_variant="longest")).markdown
    assert "not run: mjd[llama3-70b/llama3.lf-longest]" in md


def test_report_says_which_missing_letters_rule_each_api_judge_used(store, tmp_path):
    md = write_report(store, PROFILE, tmp_path / "before.md").markdown
    assert "missing_letters" not in md  # no API judge registered: nothing to say
    registry.upsert(store.engine, LLMSpec(slug="local-api", backend="openai", model="qwen2.5-7b",
                                          options={"api_key_env": "", "missing_letters": "floor"}).to_dict())
    registry.upsert(store.engine, LLMSpec(slug="other-api", backend="openai", model="m").to_dict())
    store.replace_rows("distribution_comparison",
                       [_dc("mjd", 3, "local-api", "none", "softmax", kl=0.3, missing_letters="floor")],
                       asset_key="mjd_comparison", partition_key="none|local-api", profile=PROFILE, lineage=LIN)
    md = write_report(store, PROFILE, tmp_path / "after.md").markdown
    line = next(p for p in md.splitlines() if "top-k log-probabilities (`missing_letters`" in p)
    assert "`local-api` floor (registered; its MJD rows: floor)" in line
    assert "`other-api` refuse (registered; its MJD rows: none yet)" in line
