"""Runs left behind by a killed `hlv run`: `hlv run` executes each step in its own process, so a `kill -9` (or a
power cut) leaves the step's run STARTED forever, still holding its concurrency-pool slot (`gpu` has one), and
the next `hlv run` of any GPU step would wait for that slot without end. Every run `hlv run` starts carries the
host and process that run it (`hlv/pid`); before starting new steps, runs of this host whose process is gone are
marked failed and their slots freed, as Dagster's run monitoring does for runs launched by its daemon."""

from __future__ import annotations

import os
import socket

import dagster as dg

PID_TAG = "hlv/pid"


def process_tag() -> str:
    """`<host>:<pid>` of this process, the value of `hlv/pid` on the runs it starts."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def reap_dead_runs(instance: dg.DagsterInstance, limit: int = 1000) -> list[str]:
    """Mark failed the unfinished runs started by an `hlv` process of this host that no longer exists, and free
    their pool slots; their run ids."""
    host = socket.gethostname()
    unfinished = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED,
                                                            dg.DagsterRunStatus.STARTING]), limit=limit)
    reaped = []
    for run in unfinished:
        where, _, pid = run.tags.get(PID_TAG, "").rpartition(":")
        if where != host or not pid.isdigit() or _alive(int(pid)):
            continue
        instance.report_run_failed(run, f"the hlv process that ran it ({host}:{pid}) is gone (killed?): marked "
                                        "failed by the next `hlv run`, which freed its pool slots")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped
