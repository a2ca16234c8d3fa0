"""Interrupted judging resumes without redoing paid work: a judging process killed with SIGKILL part-way, then
rerun, sends exactly the prompts the first process had not finished (every call's answers are stored as soon
as it returns), and the progress lines count items, prompts sent per second and the ETA."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from hlv_assets_tests.llm.judge_worker import judge_items

PROMPTS_PER_ITEM = 2 * 6  # 2 explanation orders x 6 option orders
REPO = Path(__file__).resolve().parents[2]


def _stored(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM llm_call")).scalar())
    except Exception:  # the table does not exist yet
        return 0
    finally:
        engine.dispose()


@pytest.mark.timeout(300)
def test_kill_9_then_rerun_sends_only_the_prompts_not_done(tmp_path, smollm2_dir, capfd):
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    n_items = 6
    worker = subprocess.Popen([sys.executable, "-m", "hlv_assets_tests.llm.judge_worker", url, str(smollm2_dir),
                               str(n_items), "1.5"], cwd=REPO, env={**os.environ},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while _stored(url) < 2 * PROMPTS_PER_ITEM:  # two items judged and stored
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the worker stored nothing in time"
            time.sleep(0.2)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == -signal.SIGKILL
    done = _stored(url)
    total = n_items * PROMPTS_PER_ITEM
    assert 2 * PROMPTS_PER_ITEM <= done < total

    records, llm = judge_items(url, str(smollm2_dir), n_items, 0.0)
    assert len(records) == total
    assert llm.counters.misses == total - done  # the rerun sends only the prompts not yet done
    assert llm.counters.hits == done
    assert _stored(url) == total
    final = capfd.readouterr().err.strip().splitlines()
    assert final[-1].startswith(f"judging with tiny-resume: {n_items}/{n_items} items (100%)")
    assert "prompts sent/s" in final[-1]
