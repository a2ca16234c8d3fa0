"""The raw layer on the real data, and on small broken copies of the real files."""

import json
import shutil

import pytest

from hlv_assets.lib import raw
from hlv_assets.lib.validation import DataFormatError


@pytest.fixture(scope="module")
def chaos(data_dir):
    return raw.load_chaosnli(data_dir / raw.CHAOSNLI_MNLI)


@pytest.fixture(scope="module")
def varierr(data_dir):
    return raw.load_varierr(data_dir / raw.VARIERR)


def test_real_row_counts_and_join(data_dir, chaos, varierr):
    items = raw.load_hlv_items(data_dir / raw.HLV_ITEMS, chaos, varierr)
    assert (len(chaos), len(varierr), len(items)) == (1599, 500, 341)
    assert items.uid.is_unique and set(items.uid) <= set(varierr.uid)
    assert all(len(ex) == 4 for ex in items.human_explanations)
    assert all(sum(c) == 4 for c in items.varierr_counts) and all(sum(c) == 5 for c in items.mnli_counts)
    dev = raw.load_chaos_split(data_dir / raw.CHAOS_DEV, chaos, "dev")
    test = raw.load_chaos_split(data_dir / raw.CHAOS_TEST, chaos, "test")
    assert (len(dev), len(test)) == (629, 629)
    # ChaosNLI's majority label, as released: first line {c: 20, e: 12, n: 68} -> n; a 100-vote tie keeps the
    # release's pick, which argmax with ties to the first label does not always give
    assert chaos.majority_label.iloc[0] == "n"
    tied = chaos[[sorted(c)[-1] == sorted(c)[-2] for c in chaos.hjd_counts]]
    assert len(tied) == 14 and any("enc"[c.index(max(c))] != m for c, m in zip(tied.hjd_counts, tied.majority_label))
    assert dev.majority_label.notna().all() and test.majority_label.notna().all()
    assert dict(zip(dev.uid, dev.majority_label)) == {u: m for u, m in zip(chaos.uid, chaos.majority_label)
                                                      if u in set(dev.uid)}
    assert (
        len(set(dev.uid) | set(test.uid) | set(items.uid)) == 1599
    )  # disjoint, and together all of ChaosNLI-MNLI
    # the MNLI counts of the 341-item file are ChaosNLI's 5 original labels
    by_uid = chaos.set_index("uid")
    assert all(
        list(by_uid.loc[u, "original_counts"]) == list(c) for u, c in zip(items.uid, items.mnli_counts)
    )


def test_anli_rounds(data_dir):
    sizes = {r: len(raw.load_anli(data_dir / raw.anli_path(r), r)) for r in raw.ANLI_ROUNDS}
    assert sizes == {"R1": 1000, "R2": 1000, "R3": 1200}


def _broken_copy(data_dir, tmp_path, rel, edit):
    """Copy a real file and apply `edit(lines) -> lines`."""
    lines = (data_dir / rel).read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / rel.replace("/", "_")
    path.write_text("".join(edit(lines)), encoding="utf-8")
    return path


def _edit_line(n, fn):
    def edit(lines):
        obj = json.loads(lines[n - 1])
        fn(obj)
        lines[n - 1] = json.dumps(obj) + "\n"
        return lines

    return edit


def test_malformed_json_line_names_file_and_line(data_dir, tmp_path):
    path = _broken_copy(
        data_dir, tmp_path, raw.CHAOSNLI_MNLI, lambda lines: lines[:6] + [lines[6][:40] + "\n"] + lines[7:]
    )
    with pytest.raises(DataFormatError) as err:
        raw.load_chaosnli(path)
    assert err.value.line == 7 and str(path) in str(err.value) and "malformed JSON" in str(err.value)


def test_label_vector_of_wrong_length(data_dir, tmp_path, chaos, varierr):
    path = _broken_copy(
        data_dir, tmp_path, raw.HLV_ITEMS, _edit_line(12, lambda o: o.__setitem__("chaos probs", [0.5, 0.5]))
    )
    with pytest.raises(DataFormatError) as err:
        raw.load_hlv_items(path, chaos, varierr)
    assert (err.value.line, err.value.field) == (12, "chaos probs") and "2 values" in str(err.value)


def test_nan_probability_is_refused(data_dir, tmp_path):
    import re

    path = _broken_copy(data_dir, tmp_path, raw.CHAOS_DEV,
                        lambda lines: lines[:2] + [re.sub(r'"label":\[[^,]+,', '"label":[NaN,', lines[2])] + lines[3:])
    with pytest.raises(DataFormatError) as err:
        raw.load_chaos_split(path, raw.load_chaosnli(data_dir / raw.CHAOSNLI_MNLI), "dev")
    assert (err.value.line, err.value.field) == (3, "label") and "NaN" in str(err.value)


def test_unknown_label(data_dir, tmp_path):
    path = _broken_copy(
        data_dir, tmp_path, raw.anli_path("R2"), _edit_line(5, lambda o: o.__setitem__("label", "x"))
    )
    with pytest.raises(DataFormatError) as err:
        raw.load_anli(path, "R2")
    assert (err.value.line, err.value.field) == (5, "label") and "unknown label 'x'" in str(err.value)


def test_duplicate_uid(data_dir, tmp_path):
    def dup(lines):
        first = json.loads(lines[0])
        obj = json.loads(lines[9])
        obj["uid"] = first["uid"]
        obj["example"]["uid"] = first["uid"]
        lines[9] = json.dumps(obj) + "\n"
        return lines

    path = _broken_copy(data_dir, tmp_path, raw.CHAOSNLI_MNLI, dup)
    with pytest.raises(DataFormatError) as err:
        raw.load_chaosnli(path)
    assert err.value.line == 10 and "duplicate uid" in str(err.value) and "line 1" in str(err.value)


def test_items_that_do_not_join_are_all_listed(data_dir, tmp_path, chaos, varierr):
    def unjoin(lines):
        for n in (3, 200, 341):
            obj = json.loads(lines[n - 1])
            obj["hypothesis"] = f"Nothing like this is in ChaosNLI ({n})."
            lines[n - 1] = json.dumps(obj) + "\n"
        return lines

    path = _broken_copy(data_dir, tmp_path, raw.HLV_ITEMS, unjoin)
    with pytest.raises(DataFormatError) as err:
        raw.load_hlv_items(path, chaos, varierr)
    msg = str(err.value)
    assert "3 items do not join" in msg and all(f"line {n} " in msg for n in (3, 200, 341))


def test_missing_field(data_dir, tmp_path, chaos, varierr):
    path = _broken_copy(data_dir, tmp_path, raw.HLV_ITEMS, _edit_line(2, lambda o: o.pop("comments")))
    with pytest.raises(DataFormatError) as err:
        raw.load_hlv_items(path, chaos, varierr)
    assert (err.value.line, err.value.field) == (2, "comments")


def test_data_source_refuses_a_changed_file(data_dir, tmp_path):
    from hlv_assets.lib.datasource import DataSource, DataSourceError

    rel = raw.anli_path("R1")
    (tmp_path / rel).parent.mkdir(parents=True)
    shutil.copy(data_dir / rel, tmp_path / rel)
    with open(tmp_path / rel, "a") as f:
        f.write("\n")
    with pytest.raises(DataSourceError, match="differs from the pinned"):
        DataSource(tmp_path).path(rel)
    assert DataSource(tmp_path, verify="record").path(rel) == tmp_path / rel
    assert DataSource(data_dir).sha256(rel).startswith("11b257c63a3caa82")


def test_data_source_offline_without_a_copy_says_what_to_set(tmp_path, monkeypatch):
    from hlv_assets.lib.datasource import DataSource, DataSourceError

    src = DataSource(None, cache_dir=tmp_path / "cache", allow_download=False)
    with pytest.raises(DataSourceError, match="HLV_DATA_DIR"):
        src.path(raw.VARIERR)

    # a download that fails (no network to GitHub here) names the setting as well
    def refuse(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("urllib.request.urlopen", refuse)
    with pytest.raises(DataSourceError, match="HLV_DATA_DIR"):
        DataSource(None, cache_dir=tmp_path / "cache").path(raw.VARIERR)


def test_download_is_verified(tmp_path, monkeypatch, data_dir):
    """The upstream fetch: the right bytes are cached; wrong bytes are refused and never written."""
    import io

    from hlv_assets.lib.datasource import DataSource, DataSourceError, pinned_files

    rel = raw.anli_path("R3")
    payload = (data_dir / rel).read_bytes()
    urls = []

    def fake_urlopen(url, timeout):
        urls.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr("urllib.request.urlopen", fake_urlopen)
    src = DataSource(None, cache_dir=tmp_path / "c")
    assert src.path(rel).read_bytes() == payload
    assert urls == [pinned_files()[rel].url]
    assert "eric11eca/curriculum-ling/1c79904f9be35204e1bd8c760fea5c8180d10b39/data/anli_v1.0/R3" in urls[0]
    payload = b"tampered"
    with pytest.raises(DataSourceError, match="not the pinned"):
        DataSource(None, cache_dir=tmp_path / "d").path(rel)
    assert not (tmp_path / "d" / rel).exists()
