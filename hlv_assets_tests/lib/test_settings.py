"""Settings read from the environment in one place: defaults, accepted values, one-line refusals, run tags."""

from __future__ import annotations

from pathlib import Path

import pytest

from hlv_assets.lib import settings
from hlv_assets.lib.datasource import DataSource
from hlv_assets.lib.errors import HLVError, SettingsError


def test_defaults_when_nothing_is_set():
    s = settings.load_settings({})
    assert s == settings.Settings(profile="demo", verify_data="strict", db_url=None,
                                  home=settings.REPO_ROOT / "data", budget_usd=None)
    assert s.database_url == f"sqlite:///{settings.REPO_ROOT / 'data' / 'hlv.db'}"


def test_values_are_read_and_an_empty_variable_counts_as_unset(tmp_path):
    env = {"HLV_PROFILE": "paper", "HLV_VERIFY_DATA": "ReCoRd", "HLV_HOME": str(tmp_path),
           "HLV_DB_URL": "postgresql+psycopg2://hlv:secret@db:5432/hlv", "HLV_BUDGET_USD": "0.50"}
    s = settings.load_settings(env)
    assert (s.profile, s.verify_data, s.home, s.budget_usd) == ("paper", "record", tmp_path, 0.5)
    assert s.run_tags() == {"hlv/profile": "paper", "hlv/verify_data": "record",
                            "hlv/database": "postgresql+psycopg2://hlv:***@db:5432/hlv",
                            "hlv/home": str(tmp_path), "hlv/budget_usd": "0.5"}
    assert settings.load_settings({"HLV_PROFILE": "", "HLV_BUDGET_USD": ""}).profile == "demo"


@pytest.mark.parametrize("var, value, line", [
    ("HLV_PROFILE", "Demo", "HLV_PROFILE='Demo' is not a profile; accepted: tiny, demo, paper (default demo)"),
    ("HLV_VERIFY_DATA", "off", "HLV_VERIFY_DATA='off' is not a verification mode; accepted: strict (refuse a "
     "file whose sha256 differs from the pinned one) or record (use it and record its hash), any case"),
    ("HLV_DB_URL", "mysqlx://u:pw@h/db", "HLV_DB_URL='mysqlx://u:***@h/db' is not a database URL (Can't load "
     "plugin: sqlalchemy.dialects:mysqlx); accepted: sqlite:///PATH or postgresql+psycopg2://USER@HOST:PORT/DB"),
    ("HLV_BUDGET_USD", "nan", "HLV_BUDGET_USD='nan' is not a budget; accepted: a non-negative number of US "
     "dollars (e.g. 5 or 0.50), or unset for no cap"),
    ("HLV_BUDGET_USD", "5$", "HLV_BUDGET_USD='5$' is not a budget; accepted: a non-negative number of US "
     "dollars (e.g. 5 or 0.50), or unset for no cap"),
])
def test_a_wrong_value_is_one_line_naming_the_variable_and_the_accepted_values(var, value, line):
    with pytest.raises(SettingsError) as info:
        settings.load_settings({var: value})
    assert str(info.value) == line and isinstance(info.value, HLVError)


def test_home_must_be_a_folder(tmp_path):
    file = tmp_path / "f"
    file.write_text("x")
    with pytest.raises(SettingsError, match=r"^HLV_HOME='.*/f' is a file, not a folder"):
        settings.load_settings({"HLV_HOME": str(file)})


def test_verification_mode_reaches_the_data_source(monkeypatch, tmp_path):
    monkeypatch.setenv("HLV_VERIFY_DATA", "Record")
    assert DataSource.from_env().verify == "record"
    monkeypatch.setenv("HLV_VERIFY_DATA", "off")  # was: silently no verification
    with pytest.raises(SettingsError, match="HLV_VERIFY_DATA='off'"):
        DataSource.from_env()
    with pytest.raises(SettingsError, match="verify='lenient'"):
        DataSource(Path(tmp_path), verify="lenient")


def test_finetune_seeds_selection_and_precision_override_the_profile(tmp_path):
    from hlv_assets.lib.profiles import PROFILES, get_profile

    for name, profile in PROFILES.items():  # every profile: the authors' weights, seed and arithmetic
        assert (profile.finetune_selection, profile.finetune_precision) == ("final", "fp32"), name
    assert PROFILES["paper"].finetune_seeds == (42,)
    env = {"HLV_FINETUNE_SEEDS": "42,43,44", "HLV_FINETUNE_SELECTION": "best-dev-macro-f1",
           "HLV_FINETUNE_PRECISION": "bf16", "HLV_HOME": str(tmp_path)}
    paper = get_profile("paper", env)
    assert (paper.finetune_seeds, paper.finetune_selection, paper.finetune_precision) == (
        (42, 43, 44), "best-dev-macro-f1", "bf16")
    assert get_profile("paper", {}) == PROFILES["paper"]
    tags = settings.load_settings(env).run_tags()
    assert (tags["hlv/finetune_seeds"], tags["hlv/finetune_selection"], tags["hlv/finetune_precision"]) == (
        "42,43,44", "best-dev-macro-f1", "bf16")
    assert "hlv/finetune_seeds" not in settings.load_settings({}).run_tags()


@pytest.mark.parametrize("var, value, line", [
    ("HLV_FINETUNE_SEEDS", "42,42", "HLV_FINETUNE_SEEDS='42,42' is not a list of seeds; accepted: distinct "
     "non-negative integers separated by commas (e.g. 42 or 42,43,44), or unset for the profile's"),
    ("HLV_FINETUNE_SEEDS", "42 43", "HLV_FINETUNE_SEEDS='42 43' is not a list of seeds; accepted: distinct "
     "non-negative integers separated by commas (e.g. 42 or 42,43,44), or unset for the profile's"),
    ("HLV_FINETUNE_SELECTION", "best", "HLV_FINETUNE_SELECTION='best' is not a checkpoint selection; accepted: "
     "final, best-dev-macro-f1, best-dev-weighted-f1, best-dev-accuracy, best-dev-kl-published, "
     "best-dev-ce-loss (default final: the last step's weights)"),
    ("HLV_FINETUNE_PRECISION", "fp16", "HLV_FINETUNE_PRECISION='fp16' is not a training precision; accepted: "
     "fp32 (default) or bf16 (autocast, on GPUs that support it)"),
])
def test_a_wrong_finetune_setting_is_one_line(var, value, line):
    with pytest.raises(SettingsError) as info:
        settings.load_settings({var: value})
    assert str(info.value) == line
