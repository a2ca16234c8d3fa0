"""Bring your own items: validation names every bad line and field, CSV = JSONL, labels -> counts, HJD checks,
one transaction (nothing written on error), versions kept as history, the ChaosNLI adapter, `hlv items add`."""

import json
import shutil
import subprocess
import uuid

import pytest
from sqlalchemy import func, select

from hlv_assets.cli import items as cli_items
from hlv_assets.lib.items_import import (
    ItemReader,
    ItemsValidationError,
    check_set_name,
    default_uid,
    selection_frame,
    set_rules,
    split_source_key,
)
from hlv_assets.store import item_sets
from hlv_assets.store.db import get_engine
from hlv_assets.store.models import Item

CHAOSNLI_SNLI = "chaosnli/chaosNLI_v1.0/chaosNLI_snli.jsonl"
PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"

GOOD = [
    {"id": "a1", "premise": "A man sleeps.", "hypothesis": "A man rests.", "labels": ["e", "Entailment", "n"],
     "hjd": [0.6, 0.3, 0.1], "explanations": [["Sleeping is resting.", "e"], ["Maybe not.", "neutral"]]},
    {"id": "a2", "premise": "A dog runs.", "hypothesis": "A cat runs.", "labels": ["c", "c", "c", "N"],
     "hjd": [0.0, 0.25, 0.75], "explanations": [["Dogs are not cats.", "c"]]},
    {"premise": "Kids  play.", "hypothesis": "Children play.", "labels": ["e"], "hjd": [1, 0, 0],
     "explanations": [["Kids are children.", "E"]]},
]


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def read_all(path, **kw):
    reader = ItemReader(path, **kw)
    records = list(reader)
    return reader, records


def where(reader):
    return sorted((e.line, e.field) for e in reader.errors)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        return get_engine(f"sqlite:///{tmp_path / 'hlv.db'}")
    return get_engine(PG_URL)  # `make test` / .ci/run start the local PostgreSQL; its absence is a failure


@pytest.fixture
def name():
    return f"t-{uuid.uuid4().hex[:10]}"


def n_rows(engine, key):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Item).where(Item.item_set == key)).scalar()


# ---- reading and validation ---------------------------------------------------------------------------------
def test_jsonl_items_labels_to_counts_and_default_ids(tmp_path):
    reader, records = read_all(write_jsonl(tmp_path / "s.jsonl", GOOD))
    assert reader.n_errors == 0 and [r.line for r in records] == [1, 2, 3]
    a1, a2, a3 = records
    assert a1.uid == "a1" and a1.counts == [2, 1, 0] and a1.labels == ["e", "e", "n"]
    assert a2.counts == [0, 1, 3] and a2.hjd == [0.0, 0.25, 0.75]
    assert a1.explanations == [["Sleeping is resting.", "e"], ["Maybe not.", "n"]]
    # no id: a stable hash of premise + hypothesis, blind to whitespace runs
    assert a3.uid == default_uid("Kids play.", " Children play. ") and a3.uid.startswith("i-")
    s = reader.summary()
    assert (s.n_items, s.has_counts, s.has_labels, s.has_hjd, s.has_explanations) == (3, True, True, True, True)
    assert (s.max_label_total, s.max_explanations) == (4, 2)


def test_csv_equals_jsonl_with_every_cell_spelling(tmp_path):
    jsonl = write_jsonl(tmp_path / "s.jsonl", GOOD)
    csv_text = (
        "id,premise,hypothesis,labels,hjd_e,hjd_n,hjd_c,explanations\n"
        'a1,A man sleeps.,A man rests.,e|Entailment|n,0.6,0.3,0.1,"[[""Sleeping is resting."", ""e""], '
        '[""Maybe not."", ""neutral""]]"\n'
        'a2,A dog runs.,A cat runs.,"c, c; c N",0,0.25,0.75,"[[""Dogs are not cats."", ""c""]]"\n'
        ',Kids  play.,Children play.,e,1,0,0,"[{""text"": ""Kids are children."", ""label"": ""E""}]"\n'
    )
    (tmp_path / "s.csv").write_text(csv_text, encoding="utf-8")
    r_json, rec_json = read_all(jsonl)
    r_csv, rec_csv = read_all(tmp_path / "s.csv")
    assert r_csv.n_errors == 0, r_csv.errors
    assert [r.canonical() for r in rec_csv] == [r.canonical() for r in rec_json]
    assert r_csv.summary().content_sha256 == r_json.summary().content_sha256


def test_csv_count_columns_and_quoted_text(tmp_path):
    (tmp_path / "c.csv").write_text(
        'premise,hypothesis,count_e,count_n,count_c,hjd\n"A, b ""quoted""",H,1,2,2,"[0.2, 0.4, 0.4]"\n'
        "P2,H2,0,0,5,0 0 1\n", encoding="utf-8")
    reader, (r1, r2) = read_all(tmp_path / "c.csv")
    assert reader.n_errors == 0
    assert r1.premise == 'A, b "quoted"' and r1.counts == [1, 2, 2] and r1.labels is None
    assert r2.counts == [0, 0, 5] and r2.hjd == [0.0, 0.0, 1.0]


def test_every_bad_line_and_field_is_named(tmp_path):
    rows = [
        GOOD[0],
        {**GOOD[1], "hypothesis": "", "labels": ["c", "x"]},          # 2: hypothesis, labels[1]
        "{not json",                                                   # 3: <json>
        "[1, 2]",                                                      # 4: <json> (not an object)
        {**GOOD[1], "id": "a9", "hjd": [0.5, 0.6, 0.1]},               # 5: hjd sums to 1.2
        {**GOOD[1], "id": "a10", "counts": [0, 1, 3], "labels": ["c"]},  # 6: labels disagree with counts
        {**GOOD[1], "id": "a11", "explanations": [["", "e"], ["ok", "q"]]},  # 7: explanations[0][0]
        {**GOOD[1], "id": "a|12"},                                     # 8: id with '|'
        {**GOOD[1], "id": "a13", "lables": ["c"]},                     # 9: unknown field
        {"id": "a14", "premise": "P", "hypothesis": "H"},              # 10: groups missing
        {**GOOD[1], "id": "a1"},                                       # 11: duplicate id (store, SQL)
    ]
    reader, records = read_all(write_jsonl(tmp_path / "bad.jsonl", rows))
    assert where(reader) == [
        (2, "hypothesis"), (2, "labels[1]"), (3, "<json>"), (4, "<json>"), (5, "hjd"), (6, "labels"),
        (7, "explanations[0][0]"), (8, "id"), (9, "lables"),
        (10, "counts/labels"), (10, "explanations"), (10, "hjd"),
    ]
    messages = {(e.line, e.field): str(e) for e in reader.errors}
    assert "bad.jsonl:5: field 'hjd': values sum to 1.2, not 1" in messages[5, "hjd"]
    assert "labels give counts [0, 0, 1] but counts say [0, 1, 3]" in messages[6, "labels"]
    assert [r.uid for r in records] == ["a1", "a1"]  # the valid lines (the duplicate is found by the store)
    with pytest.raises(ItemsValidationError) as info:
        item_sets.validate_file(tmp_path / "bad.jsonl")
    err = info.value
    assert err.total == 13 and err.lines == 10
    assert (11, "id") in {(e.line, e.field) for e in err.errors}
    assert "duplicate id 'a1' (first on line 1)" in str(err)


@pytest.mark.parametrize(("hjd", "message"), [
    ([0.2, 0.3, 0.4], "sum to 0.9"),
    ("[0.2, 0.3, NaN]", "not a finite number"),
    ("[0.5, Infinity, 0.5]", "not a finite number"),
    ([0.5, -0.1, 0.6], "negative value"),
    ([0.5, 0.5], "expected 3 numbers"),
    (["a", 0.5, 0.5], "is not a number"),
    ([True, 0, 0], "is not a number"),
    ([0.33333, 0.33333, 0.33333], "sum to 0.99999"),  # 1e-5 off: more than the 1e-6 tolerance
])
def test_hjd_must_be_a_distribution(tmp_path, hjd, message):
    value = hjd if isinstance(hjd, str) else json.dumps(hjd)
    line = '{"premise": "P", "hypothesis": "H", "hjd": ' + value + '}'
    reader, records = read_all(write_jsonl(tmp_path / "h.jsonl", [line]))
    assert not records and where(reader) == [(1, "hjd")]
    assert message in str(reader.errors[0])


def test_hjd_within_tolerance_is_kept_as_given(tmp_path):
    reader, (rec,) = read_all(write_jsonl(tmp_path / "h.jsonl", [
        {"premise": "P", "hypothesis": "H", "hjd": [0.33333333, 0.33333333, 0.33333334]}]))
    assert reader.n_errors == 0 and rec.hjd == [0.33333333, 0.33333333, 0.33333334]


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"counts": [1, -1, 0]}, "counts", "negative"),
    ({"counts": [1.5, 0, 0]}, "counts", "not an integer"),
    ({"counts": [0, 0, 0]}, "counts", "no labels"),
    ({"counts": [1, 0, 0], "count_e": 1, "count_n": 0, "count_c": 0}, "counts", "not both"),
    ({"count_e": 1, "count_n": 0}, "count_c", "give all three"),
    ({"labels": []}, "labels", "empty list"),
    ({"labels": "e n"}, None, None),  # a JSONL string of labels is split like a CSV cell: valid
])
def test_label_counts(tmp_path, fields, field, message):
    reader, records = read_all(write_jsonl(tmp_path / "c.jsonl", [{"premise": "P", "hypothesis": "H", **fields}]))
    if field is None:
        assert reader.n_errors == 0 and records[0].counts == [1, 1, 0]
        return
    assert where(reader) == [(1, field)] and message in str(reader.errors[0])


def test_errors_are_capped_but_all_counted(tmp_path):
    rows = [{"premise": "P", "hypothesis": f"H{i}", "hjd": [0.5, 0.5, 0.5]} for i in range(120)]
    reader, _ = read_all(write_jsonl(tmp_path / "many.jsonl", rows), max_errors=7)
    assert len(reader.errors) == 7 and reader.n_errors == 120
    with pytest.raises(ItemsValidationError, match=r"120 error\(s\) on 120 line\(s\)[\s\S]*and 113 more"):
        reader.raise_if_errors()


def test_extra_fields_refused_unless_allowed(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"premise": "P", "hypothesis": "H", "genre": "fiction"}])
    assert where(read_all(path)[0]) == [(1, "genre")]
    assert read_all(path, allow_extra_fields=True)[0].n_errors == 0
    (tmp_path / "x.csv").write_text("premise,hypothesis,genre\nP,H,fiction\nP2,H2\n", encoding="utf-8")
    reader, records = read_all(tmp_path / "x.csv")
    assert where(reader) == [(1, "genre")] and len(records) == 2


def test_csv_structure_errors(tmp_path):
    (tmp_path / "s.csv").write_text("premise,hypothesis\nP,H,extra\n\nP3,\n", encoding="utf-8")
    reader, records = read_all(tmp_path / "s.csv")
    assert where(reader) == [(2, "<csv>"), (4, "hypothesis")] and not records


def test_not_utf8_and_empty_files(tmp_path):
    (tmp_path / "b.jsonl").write_bytes(b'{"premise": "P\xff", "hypothesis": "H"}\n{"premise": "P", "hypothesis": "H"}\n')
    reader, records = read_all(tmp_path / "b.jsonl")
    assert where(reader) == [(1, "<line>")] and len(records) == 1
    (tmp_path / "e.jsonl").write_text("\n\n", encoding="utf-8")
    reader, _ = read_all(tmp_path / "e.jsonl")
    assert where(reader) == [(0, "<file>")]


@pytest.mark.parametrize("bad", ["My-Set", "set_1", "-set", "set-", "", "a" * 41, "hlv341", "x@y"])
def test_set_names_are_slugs(bad):
    with pytest.raises(ValueError):
        check_set_name(bad)
    assert check_set_name("chaosnli-snli-2") == "chaosnli-snli-2"


def test_rules_and_source_keys():
    assert set_rules(has_counts=False, max_label_total=0, has_explanations=False, max_explanations=0) == [
        "lf-first", "lf-longest"]
    assert "mnli-lg-first" in set_rules(has_counts=True, max_label_total=5, has_explanations=False,
                                        max_explanations=0)
    # 100 crowd votes are a distribution, not annotators: no label-guided sets from them
    assert "mnli-lg-first" not in set_rules(has_counts=True, max_label_total=100, has_explanations=False,
                                            max_explanations=0)
    assert "varierr-lg-first" in set_rules(has_counts=False, max_label_total=0, has_explanations=True,
                                           max_explanations=4)
    assert split_source_key("smollm2-135m.mnli-lg-first@chaosnli-snli") == ("smollm2-135m.mnli-lg-first",
                                                                             "chaosnli-snli")
    assert split_source_key("none@s") == ("none", "s")
    for bad in ("none", "none@Bad", "llama3.bogus@s"):
        with pytest.raises(ValueError):
            split_source_key(bad)


# ---- the store: one transaction, history -------------------------------------------------------------------
def test_import_in_batches_and_load(engine, name, tmp_path):
    rows = [{"premise": f"P{i}", "hypothesis": "H", "counts": [i % 3, 1, 0], "hjd": [0.5, 0.5, 0]}
            for i in range(53)]
    result = item_sets.import_item_set(engine, name, write_jsonl(tmp_path / "s.jsonl", rows), batch_size=7)
    v = result.version
    assert result.changed and (v.version, v.n_items, v.current, v.has_counts, v.has_hjd) == (1, 53, True, True, True)
    frame = item_sets.load_items(engine, name)
    assert list(frame.item_index) == list(range(53)) and frame.counts[4] == [1, 1, 0]
    assert frame.hjd[0] == [0.5, 0.5, 0.0] and frame.labels[0] is None
    sel = selection_frame(frame)
    assert sel.mnli_counts[4] == [1, 1, 0] and sel.varierr_counts[0] == []


def test_nothing_is_written_on_error(engine, name, tmp_path):
    rows = [{"premise": f"P{i}", "hypothesis": "H"} for i in range(2500)] + [{"premise": "P0", "hypothesis": "H"}]
    with pytest.raises(ItemsValidationError) as info:
        item_sets.import_item_set(engine, name, write_jsonl(tmp_path / "dup.jsonl", rows), batch_size=100)
    assert [(e.line, e.field) for e in info.value.errors] == [(2501, "premise+hypothesis")]
    assert "the same item as line 1" in str(info.value)
    assert n_rows(engine, name) == 0 and item_sets.versions(engine, name) == []


def test_replace_keeps_history_refuses_without_flag(engine, name, tmp_path):
    v1 = write_jsonl(tmp_path / "v1.jsonl", GOOD)
    v2 = write_jsonl(tmp_path / "v2.jsonl", GOOD[:2])
    first = item_sets.import_item_set(engine, name, v1)
    again = item_sets.import_item_set(engine, name, v1)  # same content: nothing to do
    assert not again.changed and again.version.version == 1
    with pytest.raises(item_sets.ItemSetExists, match="--replace"):
        item_sets.import_item_set(engine, name, v2)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{**GOOD[0], "hjd": [1, 1, 1]}])
    with pytest.raises(ItemsValidationError):
        item_sets.import_item_set(engine, name, bad, replace=True)
    assert n_rows(engine, name) == 3 and item_sets.current(engine, name).version == 1  # untouched
    second = item_sets.import_item_set(engine, name, v2, replace=True)
    assert second.version.version == 2 and second.version.n_items == 2
    assert n_rows(engine, name) == 2 and n_rows(engine, f"{name}@1") == 3
    history = item_sets.versions(engine, name)
    assert [(v.version, v.current, v.storage_key) for v in history] == [(2, True, name), (1, False, f"{name}@1")]
    assert history[1].replaced_at is not None and history[1].content_sha256 == first.version.content_sha256
    assert len(item_sets.load_items(engine, name, storage_key=f"{name}@1")) == 3


# ---- ChaosNLI through the same command as any user ---------------------------------------------------------
def test_chaosnli_adapter_equals_the_documented_one_liner(data_dir, tmp_path):
    src = data_dir / CHAOSNLI_SNLI
    reader, records = read_all(src, adapter="chaosnli")
    assert reader.n_errors == 0 and len(records) == 1514
    first = records[0]
    assert first.uid == "2407214681.jpg#0r1n" and first.counts == [2, 3, 0] and first.hjd == [0.3, 0.7, 0.0]
    assert sorted(len(r.labels) for r in records)[:8] == [4] * 7 + [5]
    if shutil.which("jq"):
        out = tmp_path / "snli.jsonl"
        with open(out, "w") as f:
            subprocess.run(["jq", "-c", "{id: .uid, premise: .example.premise, hypothesis: .example.hypothesis, "
                            "labels: .old_labels, hjd: .label_dist}", str(src)], stdout=f, check=True)
        converted, _ = read_all(out)
        assert converted.n_errors == 0
        assert converted.summary().content_sha256 == reader.summary().content_sha256


def test_chaosnli_adapter_names_the_source_fields(tmp_path):
    line = {"uid": "u1", "example": {"premise": "P"}, "old_labels": ["entailment", "maybe"],
            "label_dist": [0.5, 0.6, 0.0]}
    reader, _ = read_all(write_jsonl(tmp_path / "c.jsonl", [line]), adapter="chaosnli")
    assert where(reader) == [(1, "example.hypothesis"), (1, "label_dist"), (1, "old_labels[1]")]


# ---- `hlv items add` ------------------------------------------------------------------------------------------
def test_cli_add_check_list(tmp_path, monkeypatch, capsys, name):
    monkeypatch.setenv("HLV_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HLV_DB_URL", raising=False)
    good = write_jsonl(tmp_path / "g.jsonl", GOOD)
    bad = write_jsonl(tmp_path / "b.jsonl", [GOOD[0], {**GOOD[1], "hjd": [0.2, 0.2, 0.2]}, "oops"])
    assert cli_items.main(["items", "add", name, str(bad), "--no-partitions"]) == cli_items.EXIT_INVALID
    err = capsys.readouterr().err
    assert "b.jsonl:2: field 'hjd'" in err and "b.jsonl:3: field '<json>'" in err and "nothing was imported" in err
    assert cli_items.main(["items", "add", name, str(good), "--check"]) == 0
    assert "nothing written" in capsys.readouterr().out
    assert item_sets.versions(get_engine()) == []
    assert cli_items.main(["items", "add", name, str(good), "--no-partitions"]) == 0
    out = capsys.readouterr().out
    assert f"registered item set {name!r} version 1: 3 items" in out and "mnli-lg-first" in out
    other = write_jsonl(tmp_path / "o.jsonl", GOOD[:1])
    assert cli_items.main(["items", "add", name, str(other), "--no-partitions"]) == cli_items.EXIT_REFUSED
    assert "--replace" in capsys.readouterr().err
    assert cli_items.main(["items", "add", name, str(other), "--replace", "--no-partitions"]) == 0
    assert "version 1 is kept as history" in capsys.readouterr().out
    assert cli_items.main(["items", "list", "--all"]) == 0
    table = capsys.readouterr().out
    assert f"| {name} | 2 | yes | 1 |" in table and f"| {name} | 1 | no | 3 |" in table
    assert cli_items.main(["items", "add", "Bad_Name", str(good)]) == cli_items.EXIT_INVALID

