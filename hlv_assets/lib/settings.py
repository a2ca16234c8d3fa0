"""The platform's settings, read from the environment and validated in one place: profile, data verification,
results database, output folder, LLM budget, the fine-tunes' seeds, checkpoint selection and precision. The CLI, the store and the Dagster `settings` resource all read
them through here; a wrong value is one line naming the variable and the values it accepts (SettingsError).

| variable | accepted | default |
|---|---|---|
| HLV_PROFILE | tiny, demo, paper | demo |
| HLV_VERIFY_DATA | strict, record (any case) | strict |
| HLV_DB_URL | an SQLAlchemy URL: sqlite:///PATH, postgresql+psycopg2://USER@HOST:PORT/DB | SQLite at HLV_HOME/hlv.db |
| HLV_HOME | a folder (created when needed) | data/ in the repository |
| HLV_BUDGET_USD | a non-negative number of US dollars | no cap |
| HLV_FINETUNE_SEEDS | distinct non-negative integers, comma-separated | the profile's (42) |
| HLV_FINETUNE_SELECTION | final, best-dev-macro-f1, best-dev-weighted-f1, best-dev-accuracy, best-dev-kl-published, best-dev-ce-loss | the profile's (final) |
| HLV_FINETUNE_PRECISION | fp32, bf16 | the profile's (fp32) |

An empty variable counts as unset.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from hlv_assets.lib.errors import SettingsError

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILE_NAMES = ("tiny", "demo", "paper")
VERIFY_MODES = ("strict", "record")
DEFAULT_PROFILE, DEFAULT_VERIFY = "demo", "strict"
DB_URL_FORMS = "sqlite:///PATH or postgresql+psycopg2://USER@HOST:PORT/DB"
#: which weights a fine-tune reports (lib/finetune/config.py SELECTIONS) and its arithmetic
FINETUNE_SELECTIONS = ("final", "best-dev-macro-f1", "best-dev-weighted-f1", "best-dev-accuracy",
                       "best-dev-kl-published", "best-dev-ce-loss")
FINETUNE_PRECISIONS = ("fp32", "bf16")
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def _raw(environ: Mapping[str, str] | None, name: str) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    return value if value else None  # empty counts as unset


def is_set(name: str, environ: Mapping[str, str] | None = None) -> bool:
    return _raw(environ, name) is not None


def check_profile(value: str, var: str = "HLV_PROFILE") -> str:
    if value not in PROFILE_NAMES:
        raise SettingsError(f"{var}={value!r} is not a profile; accepted: {', '.join(PROFILE_NAMES)} "
                            f"(default {DEFAULT_PROFILE})")
    return value


def check_verify(value: str, var: str = "HLV_VERIFY_DATA") -> str:
    mode = value.lower()
    if mode not in VERIFY_MODES:
        raise SettingsError(f"{var}={value!r} is not a verification mode; accepted: strict (refuse a file whose "
                            "sha256 differs from the pinned one) or record (use it and record its hash), any case")
    return mode


def check_db_url(value: str, var: str = "HLV_DB_URL") -> str:
    """The URL as given, once SQLAlchemy can parse it and knows its database."""
    try:
        url = make_url(value)
        url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        shown = _PASSWORD.sub(r"\1***@", value)
        raise SettingsError(f"{var}={shown!r} is not a database URL ({reason}); "
                            f"accepted: {DB_URL_FORMS}") from None
    return value


def check_home(value: str, var: str = "HLV_HOME") -> Path:
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise SettingsError(f"{var}={value!r} is a file, not a folder; give a folder for the outputs")
    return path


def check_budget(value: str | float, var: str = "HLV_BUDGET_USD") -> float:
    try:
        budget = float(value)
    except (TypeError, ValueError):
        budget = math.nan
    if not math.isfinite(budget) or budget < 0:
        raise SettingsError(f"{var}={value!r} is not a budget; accepted: a non-negative number of US dollars "
                            "(e.g. 5 or 0.50), or unset for no cap")
    return budget


def check_seeds(value: str, var: str = "HLV_FINETUNE_SEEDS") -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in str(value).split(","))
    except ValueError:
        seeds = ()
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise SettingsError(f"{var}={value!r} is not a list of seeds; accepted: distinct non-negative integers "
                            "separated by commas (e.g. 42 or 42,43,44), or unset for the profile's")
    return seeds


def check_selection(value: str, var: str = "HLV_FINETUNE_SELECTION") -> str:
    if value not in FINETUNE_SELECTIONS:
        raise SettingsError(f"{var}={value!r} is not a checkpoint selection; accepted: "
                            f"{', '.join(FINETUNE_SELECTIONS)} (default final: the last step's weights)")
    return value


def check_precision(value: str, var: str = "HLV_FINETUNE_PRECISION") -> str:
    if value not in FINETUNE_PRECISIONS:
        raise SettingsError(f"{var}={value!r} is not a training precision; accepted: fp32 (default) or bf16 "
                            "(autocast, on GPUs that support it)")
    return value


def _read(environ: Mapping[str, str] | None, name: str, check, default=None):
    """Variable `name` validated by `check`, or `default` when unset (or empty)."""
    raw = _raw(environ, name)
    return check(raw) if raw else default


def finetune_seeds(environ: Mapping[str, str] | None = None) -> tuple[int, ...] | None:
    """HLV_FINETUNE_SEEDS, or None for the profile's seeds."""
    return _read(environ, "HLV_FINETUNE_SEEDS", check_seeds)


def finetune_selection(environ: Mapping[str, str] | None = None) -> str | None:
    """HLV_FINETUNE_SELECTION, or None for the profile's (final)."""
    return _read(environ, "HLV_FINETUNE_SELECTION", check_selection)


def finetune_precision(environ: Mapping[str, str] | None = None) -> str | None:
    """HLV_FINETUNE_PRECISION, or None for the profile's (fp32)."""
    return _read(environ, "HLV_FINETUNE_PRECISION", check_precision)


def profile_name(environ: Mapping[str, str] | None = None) -> str:
    return _read(environ, "HLV_PROFILE", check_profile, DEFAULT_PROFILE)


def verify_mode(environ: Mapping[str, str] | None = None) -> str:
    return _read(environ, "HLV_VERIFY_DATA", check_verify, DEFAULT_VERIFY)


def home(environ: Mapping[str, str] | None = None) -> Path:
    return _read(environ, "HLV_HOME", check_home, REPO_ROOT / "data")


def db_url(environ: Mapping[str, str] | None = None) -> str | None:
    """HLV_DB_URL, or None for the SQLite file under HLV_HOME."""
    return _read(environ, "HLV_DB_URL", check_db_url)


def budget_usd(environ: Mapping[str, str] | None = None) -> float | None:
    return _read(environ, "HLV_BUDGET_USD", check_budget)


def redact(url: str) -> str:
    """A database URL without its password, for logs, tags and metadata."""
    return make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class Settings:
    """The settings of one process or run, validated."""

    profile: str = DEFAULT_PROFILE
    verify_data: str = DEFAULT_VERIFY
    db_url: str | None = None  # None: SQLite at <home>/hlv.db
    home: Path = REPO_ROOT / "data"
    budget_usd: float | None = None  # None: no cap
    #: fine-tune overrides of the profile (None: the profile's seeds / selection / precision)
    finetune_seeds: tuple[int, ...] | None = None
    finetune_selection: str | None = None
    finetune_precision: str | None = None

    def __post_init__(self):
        check_profile(self.profile, "profile")
        if self.verify_data not in VERIFY_MODES:
            raise SettingsError(f"verify_data={self.verify_data!r}; accepted: {', '.join(VERIFY_MODES)}")
        if self.db_url is not None:
            check_db_url(self.db_url, "db_url")
        if self.budget_usd is not None:
            check_budget(self.budget_usd, "budget_usd")
        if self.finetune_seeds is not None:
            check_seeds(",".join(map(str, self.finetune_seeds)), "finetune_seeds")
        if self.finetune_selection is not None:
            check_selection(self.finetune_selection, "finetune_selection")
        if self.finetune_precision is not None:
            check_precision(self.finetune_precision, "finetune_precision")

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.home / 'hlv.db'}"

    def run_tags(self) -> dict[str, str]:
        """Tags recording these settings on a Dagster run (the database without its password; the fine-tune
        overrides when set)."""
        tags = {
            "hlv/profile": self.profile,
            "hlv/verify_data": self.verify_data,
            "hlv/database": redact(self.database_url),
            "hlv/home": str(self.home),
            "hlv/budget_usd": "none" if self.budget_usd is None else f"{self.budget_usd:g}",
        }
        if self.finetune_seeds is not None:
            tags["hlv/finetune_seeds"] = ",".join(map(str, self.finetune_seeds))
        for name in ("selection", "precision"):
            if getattr(self, f"finetune_{name}") is not None:
                tags[f"hlv/finetune_{name}"] = getattr(self, f"finetune_{name}")
        return tags

    def as_dict(self) -> dict:
        return {**asdict(self), "home": str(self.home), "db_url": self.db_url and redact(self.db_url)}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Every setting from the environment (default: `os.environ`), each validated; all wrong values in one
    SettingsError line."""
    readers = (("profile", profile_name), ("verify_data", verify_mode), ("db_url", db_url), ("home", home),
               ("budget_usd", budget_usd), ("finetune_seeds", finetune_seeds),
               ("finetune_selection", finetune_selection), ("finetune_precision", finetune_precision))
    values, errors = {}, []
    for name, read in readers:
        try:
            values[name] = read(environ)
        except SettingsError as exc:
            errors.append(str(exc))
    if errors:
        raise SettingsError("; ".join(errors))
    return Settings(**values)
