"""The `settings` resource: built from the environment, validated at load and at run start, its profile the
one the code versions were computed with, its run tags."""

from __future__ import annotations

import dagster as dg
import pytest

from hlv_assets.defs.resources import HLVSettings as ReExported
from hlv_assets.defs.settings import HLVSettings, run_tags
from hlv_assets.lib.errors import SettingsError


def _profile_seen(resource: HLVSettings) -> tuple[bool, dict, str]:
    seen = {}

    @dg.asset
    def probe(settings: HLVSettings) -> None:
        seen.update(profile=settings.profile, tags=settings.run_tags(), budget=settings.budget_usd)

    result = dg.materialize([probe], resources={"settings": resource}, raise_on_error=False)
    errors = [getattr(e.event_specific_data, "error", None) for e in result.all_events]
    failure = "\n".join(err.to_string() for err in errors if err is not None)
    return result.success, seen, failure


def test_the_resource_is_the_environment(monkeypatch, tmp_path):
    assert ReExported is HLVSettings
    monkeypatch.setenv("HLV_PROFILE", "tiny")
    monkeypatch.setenv("HLV_HOME", str(tmp_path))
    monkeypatch.setenv("HLV_BUDGET_USD", "2")
    ok, seen, _ = _profile_seen(HLVSettings.from_env())
    assert ok and seen["profile"] == "tiny" and seen["budget"] == 2.0
    assert seen["tags"] == run_tags() and seen["tags"]["hlv/home"] == str(tmp_path)


def test_a_wrong_setting_fails_at_load_not_in_a_run(monkeypatch):
    monkeypatch.setenv("HLV_VERIFY_DATA", "off")
    with pytest.raises(SettingsError, match=r"^HLV_VERIFY_DATA='off' is not a verification mode"):
        HLVSettings.from_env()


def test_a_profile_other_than_the_loaded_one_is_refused_at_run_start(monkeypatch):
    monkeypatch.setenv("HLV_PROFILE", "tiny")
    ok, seen, failure = _profile_seen(HLVSettings(profile="paper"))
    assert not ok and not seen
    assert "the settings resource says profile 'paper' but HLV_PROFILE is 'tiny'" in failure


def test_values_given_in_code_are_validated_too():
    with pytest.raises(Exception, match="settings.verify_data='sometimes' is not a verification mode"):
        HLVSettings(verify_data="sometimes")
    with pytest.raises(Exception, match="settings.budget_usd=-3"):
        HLVSettings(budget_usd=-3)
