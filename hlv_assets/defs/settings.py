"""The `settings` resource: profile, data verification, results database, output folder and LLM budget, read
from the environment (`dg.EnvVar` where set) through `lib/settings.py`, validated when the definitions load
and again when a run starts, and recorded on runs as tags (`run_tags`)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field, field_validator

from hlv_assets.lib import settings as env
from hlv_assets.lib.errors import SettingsError
from hlv_assets.lib.profiles import Profile, get_profile

#: resource field -> the environment variable it comes from (the budget is a number: read, not deferred)
ENV_VARS = {"profile": "HLV_PROFILE", "verify_data": "HLV_VERIFY_DATA", "db_url": "HLV_DB_URL", "home": "HLV_HOME"}


def _deferred(value) -> bool:
    return isinstance(value, dg.EnvVar)  # resolved (and validated again) when a run starts


class HLVSettings(dg.ConfigurableResource):
    """The settings every asset runs under: the same for CLI, UI and automation runs (defaults: the
    environment, see lib/settings.py). The profile must be the one the definitions were loaded with
    (it is part of every code version and asset path)."""

    profile: str = Field(default_factory=env.profile_name, description="HLV_PROFILE: tiny, demo or paper")
    verify_data: str = Field(default_factory=env.verify_mode,
                             description="HLV_VERIFY_DATA: strict (refuse an edited data file) or record")
    db_url: str | None = Field(default_factory=env.db_url,
                               description="HLV_DB_URL: results database (unset: SQLite under HLV_HOME)")
    home: str | None = Field(default_factory=lambda: str(env.home()), description="HLV_HOME: output folder")
    budget_usd: float | None = Field(default_factory=env.budget_usd,
                                     description="HLV_BUDGET_USD: spending cap per asset partition (unset: none)")

    @field_validator("profile", mode="before")
    @classmethod
    def _profile(cls, value):
        return value if _deferred(value) else env.check_profile(value, "settings.profile")

    @field_validator("verify_data", mode="before")
    @classmethod
    def _verify(cls, value):
        return value if _deferred(value) else env.check_verify(value, "settings.verify_data")

    @field_validator("db_url", mode="before")
    @classmethod
    def _db_url(cls, value):
        return value if value is None or _deferred(value) else env.check_db_url(value, "settings.db_url")

    @field_validator("home", mode="before")
    @classmethod
    def _home(cls, value):
        return value if value is None or _deferred(value) else str(env.check_home(value, "settings.home"))

    @field_validator("budget_usd", mode="before")
    @classmethod
    def _budget(cls, value):
        return None if value is None else env.check_budget(value, "settings.budget_usd")

    @classmethod
    def from_env(cls) -> HLVSettings:
        """The resource of the code location: every variable validated now (SettingsError at definitions
        load), the ones that are set passed as `dg.EnvVar` so the UI shows where each value comes from."""
        current = env.load_settings()
        fields = {field: dg.EnvVar(var) for field, var in ENV_VARS.items() if env.is_set(var)}
        return cls(**fields, budget_usd=current.budget_usd)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        loaded = env.profile_name()
        if self.profile != loaded:
            raise SettingsError(f"the settings resource says profile {self.profile!r} but HLV_PROFILE is "
                                f"{loaded!r}, which set the code versions and asset paths: set HLV_PROFILE="
                                f"{self.profile} for the code location, or leave the resource's profile unset")
        self._tag_run(context)

    def _tag_run(self, context: dg.InitResourceContext) -> None:
        """Record the settings on the run, whoever launched it (UI, automation, `hlv run`): the tags it lacks."""
        run, instance = context.dagster_run, context.instance
        if run is None or instance is None:
            return
        missing = {k: v for k, v in self.run_tags().items() if k not in (run.tags or {})}
        if missing:
            instance.add_run_tags(run.run_id, missing)

    def resolved(self) -> env.Settings:
        """These settings as the Dagster-free dataclass."""
        home = env.check_home(self.home) if self.home else env.home()
        return env.Settings(profile=self.profile, verify_data=self.verify_data, db_url=self.db_url or None,
                            home=home, budget_usd=self.budget_usd, finetune_seeds=env.finetune_seeds(),
                            finetune_selection=env.finetune_selection(), finetune_precision=env.finetune_precision())

    def get(self) -> Profile:
        """The profile, with the fine-tune overrides of the environment (HLV_FINETUNE_SEEDS / _SELECTION /
        _PRECISION) applied."""
        return get_profile(self.profile)

    def run_tags(self) -> dict[str, str]:
        return self.resolved().run_tags()


def run_tags() -> dict[str, str]:
    """Tags recording the current settings on a run launched from this process (validated first)."""
    return env.load_settings().run_tags()
