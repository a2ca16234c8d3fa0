"""Every user error of `hlv` (the README's table): its exact line, its exit status, and no traceback unless
`--debug`. The expected lines are written out by hand here, so a changed message shows up as a failing test."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import pytest

from hlv_assets import cli
from hlv_assets.lib.paths import REPO_ROOT
from hlv_assets_tests.store.conftest import PG_URL

PROFILE_LINE = "hlv: HLV_PROFILE='bogus' is not a profile; accepted: tiny, demo, paper (default demo)"
VERIFY_LINE = ("hlv: HLV_VERIFY_DATA='off' is not a verification mode; accepted: strict (refuse a file whose "
               "sha256 differs from the pinned one) or record (use it and record its hash), any case")
URL_LINE = ("hlv: HLV_DB_URL='notaurl' is not a database URL (Could not parse SQLAlchemy URL from given URL "
            "string); accepted: sqlite:///PATH or postgresql+psycopg2://USER@HOST:PORT/DB")
BUDGET_LINE = ("hlv: HLV_BUDGET_USD='-1' is not a budget; accepted: a non-negative number of US dollars "
               "(e.g. 5 or 0.50), or unset for no cap")
CLOSED_PORT = "postgresql+psycopg2://127.0.0.1:1/x"
CLOSED_LINES = [
    f'hlv: cannot use the results database {CLOSED_PORT}: connection to server at "127.0.0.1", port 1 failed: '
    "Connection refused",
    "  start the database server, or fix HLV_DB_URL (unset: SQLite under HLV_HOME)",
]


@pytest.fixture
def hlv(monkeypatch, tmp_path, capsys):
    """Runs `hlv ...` in this process against a fresh HLV_HOME; returns (exit status, stdout, stderr)."""
    monkeypatch.setenv("HLV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    for var in ("HLV_DB_URL", "HLV_VERIFY_DATA", "HLV_BUDGET_USD"):
        monkeypatch.delenv(var, raising=False)

    def run(*argv: str, **env: str) -> tuple[int, str, str]:
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        capsys.readouterr()
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _lines(err: str) -> list[str]:
    return err.rstrip("\n").splitlines()


@pytest.mark.parametrize("argv", [("tables",), ("run", "baseline_distributions", "--dry-run")])
def test_a_bogus_profile_is_one_line_before_any_work(hlv, argv):
    code, out, err = hlv(*argv, HLV_PROFILE="bogus")
    assert (code, out, _lines(err)) == (2, "", [PROFILE_LINE])


def test_verification_mode_is_case_insensitive_and_anything_else_is_refused(hlv):
    assert hlv("tables", HLV_VERIFY_DATA="Strict")[0] == 0
    assert hlv("tables", HLV_VERIFY_DATA="RECORD")[0] == 0
    code, out, err = hlv("tables", HLV_VERIFY_DATA="off")
    assert (code, out, _lines(err)) == (2, "", [VERIFY_LINE])


def test_bad_database_url(hlv):
    assert hlv("tables", HLV_DB_URL="notaurl")[::2] == (2, URL_LINE + "\n")


def test_bad_budget(hlv):
    assert hlv("tables", HLV_BUDGET_USD="-1")[::2] == (2, BUDGET_LINE + "\n")


def test_two_wrong_settings_are_named_in_one_line(hlv):
    code, _, err = hlv("tables", HLV_PROFILE="bogus", HLV_BUDGET_USD="-1")
    assert (code, _lines(err)) == (2, [f"{PROFILE_LINE}; {BUDGET_LINE.removeprefix('hlv: ')}"])


def test_closed_postgres_port(hlv):
    code, out, err = hlv("tables", HLV_DB_URL=CLOSED_PORT)
    assert (code, out, _lines(err)) == (1, "", CLOSED_LINES)


def test_output_into_a_missing_folder(hlv, tmp_path):
    missing = tmp_path / "no" / "such"
    code, out, err = hlv("export", "baseline_distributions", "--partition", "uniform", "-o", str(missing / "x.jsonl"))
    assert (code, out) == (2, "")
    assert _lines(err) == [f"hlv export: argument -o/--output: folder {missing} does not exist: create it or "
                           "choose another path", "  see: hlv export --help"]


def test_unknown_profile_option(hlv):
    code, _, err = hlv("tables", "--profile", "bogus")
    assert (code, _lines(err)) == (2, ["hlv tables: argument --profile: invalid choice: 'bogus' (choose from "
                                       "'tiny', 'demo', 'paper')", "  see: hlv tables --help"])


def test_unknown_asset(hlv):
    code, out, err = hlv("run", "nosuchasset", "--dry-run")
    assert code == 2 and out == ""
    (line,) = _lines(err)
    assert line.startswith("hlv: unknown asset nosuchasset; known: anli_test, baseline_distributions, ")


def test_unknown_partition(hlv):
    code, out, err = hlv("run", "baseline_distributions", "--partition", "nosuch", "--dry-run")
    assert code == 2 and out == ""
    (line,) = _lines(err)
    assert line.startswith("hlv: baseline_distributions") and "'nosuch'" in line and "Traceback" not in err


# ---- item files: file, line and field on every database -----------------------------------------------
NUL_JSONL = '{"premise": "a\\u0000b", "hypothesis": "h", "counts": [1, 0, 0]}\n'
DUPLICATE_JSONL = '{"premise": "p", "hypothesis": "h", "premise": "q", "counts": [1, 0, 0]}\n'


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("content, suffix, message", [
    (NUL_JSONL, "jsonl", "field 'premise': contains a NUL byte (\\u0000) at character 2; remove it"),
    ("premise,hypothesis,counts\nok,h,1 0 0\nok,h\x00x,1 0 0\n", "csv",
     "field 'hypothesis': contains a NUL byte (\\u0000) at character 2; remove it"),
    (DUPLICATE_JSONL, "jsonl", "field 'premise': key 'premise' given twice in one object; keep one"),
    ('{"premise": "p", "hypothesis": "x\\ud800", "counts": [1, 0, 0]}\n', "jsonl",
     "field 'hypothesis': contains an unpaired surrogate at character 2 (not valid Unicode); fix the text's encoding"),
    ('{"premise": "p", "hypothesis": "h", "explanations": [{"text": "t", "label": "e", "text": "u"}]}\n',
     "jsonl", "field 'text': key 'text' given twice in one object; keep one"),
])
def test_bad_item_file_names_file_line_and_field(hlv, tmp_path, database, content, suffix, message):
    path = tmp_path / f"items.{suffix}"
    path.write_text(content)
    line = content.count("\n")
    env = {"HLV_DB_URL": PG_URL} if database == "postgresql" else {}
    code, _, err = hlv("items", "add", f"bad-{os.getpid()}", str(path), "--no-partitions", **env)
    assert (code, _lines(err)) == (2, [f"{path}: 1 error(s) on 1 line(s); nothing was imported",
                                       f"  {path}:{line}: {message}"])


# ---- --debug, and the real entry point ------------------------------------------------------------------
def test_traceback_only_with_debug(hlv):
    code, _, err = hlv("tables", HLV_DB_URL=CLOSED_PORT)
    assert code == 1 and "Traceback" not in err
    code, _, err = hlv("--debug", "tables", HLV_DB_URL=CLOSED_PORT)
    assert code == 1 and "Traceback (most recent call last)" in err and _lines(err)[-2:] == CLOSED_LINES
    code, _, err = hlv("tables", "--debug", HLV_PROFILE="bogus")  # accepted after the sub-command too
    assert code == 2 and "Traceback" in err and _lines(err)[-1] == PROFILE_LINE


def test_an_unexpected_error_is_two_lines(hlv, monkeypatch):
    def broken(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "cmd_tables", broken)
    code, _, err = hlv("tables")
    assert (code, _lines(err)) == (1, ["hlv: unexpected error: ZeroDivisionError: division by zero",
                                       "  this is a bug: rerun with --debug and report the traceback"])


@pytest.mark.parametrize("exc, lines, code", [
    (SystemExit("no stored value for x: materialize it first"),
     ["hlv: no stored value for x: materialize it first"], 1),
    (FileNotFoundError(2, "No such file or directory", "/no/such/out.csv"),
     ["hlv: /no/such/out.csv: No such file or directory", "  create the folder or choose another path"], 1),
    (PermissionError(13, "Permission denied", "/root/out.csv"),
     ["hlv: /root/out.csv: Permission denied", "  choose a path you may write, or fix its permissions"], 1),
    (dg.DagsterUnknownPartitionError("Could not find a partition with key `x`."),
     ["hlv: unknown partition: Could not find a partition with key `x`.",
      "  give `<llm>/<explanations>` or Dagster's key; the UI lists an asset's partitions"], 2),
])
def test_known_third_party_failures_are_mapped(hlv, monkeypatch, exc, lines, code):
    def failing(args):
        raise exc

    monkeypatch.setattr(cli, "cmd_tables", failing)
    got, _, err = hlv("tables")
    assert (got, _lines(err)) == (code, lines)


def test_console_script_exit_status(tmp_path):
    env = {**os.environ, "HLV_PROFILE": "bogus", "HLV_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", "import sys; from hlv_assets.cli import main; sys.exit(main())",
                           "tables"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", PROFILE_LINE + "\n")
