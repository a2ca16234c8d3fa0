"""`hlv export` writes valid JSON and CSV only: a NaN or infinity is refused in one line, nothing written."""

import shutil

import pandas as pd
import pytest

from hlv_assets.lib.paths import output_dir
from hlv_assets.store.export import export_asset


@pytest.fixture
def profile(unique):
    """A profile folder of its own under data/assets (removed after), so no other test sees these files."""
    name = f"export{unique}"
    yield name
    shutil.rmtree(output_dir() / "assets" / name, ignore_errors=True)


def _write(profile: str, name: str, frame: pd.DataFrame) -> None:
    path = output_dir() / "assets" / profile / name / "p.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)


@pytest.fixture
def parquet_asset(profile, unique):
    """A stored (Parquet) asset value with a NaN in its second row, as an old or foreign file could hold."""
    name = f"frame{unique}"
    _write(profile, name, pd.DataFrame({"uid": ["a", "b"], "kl": [0.5, float("nan")],
                                        "lists": [[1.0, 2.0], [3.0, 4.0]]}))
    return name


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_a_non_finite_value_is_refused_in_one_line(parquet_asset, profile, fmt, tmp_path):
    target = tmp_path / f"out.{fmt}"
    with pytest.raises(SystemExit) as err:
        export_asset(parquet_asset, "p", fmt, str(target), profile=profile)
    message = str(err.value)
    assert "\n" not in message and f"{parquet_asset}[p] row 2 (uid b)" in message and "field 'kl' is nan" in message
    assert not target.exists()


def test_finite_frames_export_as_before(profile, unique, tmp_path):
    name = f"ok{unique}"
    _write(profile, name, pd.DataFrame({"uid": ["a"], "kl": [0.25], "lists": [[1.0, 2.0]]}))
    export_asset(name, "p", "csv", str(tmp_path / "o.csv"), profile=profile)
    assert (tmp_path / "o.csv").read_text() == 'uid,kl,lists\na,0.25,"[1.0, 2.0]"\n'
    export_asset(name, "p", "jsonl", str(tmp_path / "o.jsonl"), profile=profile)
    assert (tmp_path / "o.jsonl").read_text() == '{"uid": "a", "kl": 0.25, "lists": [1.0, 2.0]}\n'
