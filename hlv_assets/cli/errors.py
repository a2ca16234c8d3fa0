"""How `hlv` reports a failure: one to three lines on stderr (what failed, where, what to do) and a non-zero
exit status; the traceback only with `--debug`. Known third-party failures are mapped here to such lines."""

from __future__ import annotations

import sys
import traceback
from typing import TextIO

import dagster as dg
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

from hlv_assets.lib import settings
from hlv_assets.lib.errors import HLVError

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def _database() -> str:
    try:
        return settings.redact(settings.load_settings().database_url)
    except HLVError:
        return "the results database"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe(exc: BaseException) -> tuple[list[str], int] | None:
    """The lines and exit status for a known failure; None for an unexpected one (a bug)."""
    if isinstance(exc, HLVError):
        return [str(exc)], exc.exit_code
    if isinstance(exc, OperationalError):
        return [f"cannot use the results database {_database()}: {_first_line(exc)}",
                "start the database server, or fix HLV_DB_URL (unset: SQLite under HLV_HOME)"], EXIT_FAILED
    if isinstance(exc, ProgrammingError):
        return [f"the results database {_database()} refused a statement: {_first_line(exc)}",
                "check that HLV_DB_URL names a database this user may create tables in"], EXIT_FAILED
    if isinstance(exc, ArgumentError):
        return [f"bad database URL: {_first_line(exc)}", f"accepted: {settings.DB_URL_FORMS}"], EXIT_USAGE
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
        where = exc.filename or "a file"
        what = {FileNotFoundError: "create the folder or choose another path",
                PermissionError: "choose a path you may write, or fix its permissions"}.get(
                    type(exc), "choose another path")
        return [f"{where}: {exc.strerror or _first_line(exc)}", what], EXIT_FAILED
    if isinstance(exc, dg.DagsterUnknownPartitionError):
        return [f"unknown partition: {_first_line(exc)}",
                "give `<llm>/<explanations>` or Dagster's key; the UI lists an asset's partitions"], EXIT_USAGE
    if isinstance(exc, SystemExit) and isinstance(exc.code, str):
        return [exc.code], EXIT_FAILED
    if isinstance(exc, KeyboardInterrupt):
        return ["interrupted"], EXIT_INTERRUPTED
    return None


def report(exc: BaseException, *, debug: bool, out: TextIO | None = None) -> int:
    """Print `exc` for a person and return the exit status (the traceback first when `debug`)."""
    out = out or sys.stderr
    if debug:
        traceback.print_exception(exc, file=out)
    known = describe(exc)
    if known is None:
        lines = [f"unexpected error: {type(exc).__name__}: {_first_line(exc)}",
                 "this is a bug: rerun with --debug and report the traceback"]
        code = EXIT_FAILED
    else:
        lines, code = known
    print(f"hlv: {lines[0]}", file=out)
    for line in lines[1:3]:
        print(f"  {line}", file=out)
    return code
