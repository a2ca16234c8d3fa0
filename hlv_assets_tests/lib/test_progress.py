"""lib/progress.py: rate limiting, rate / ETA arithmetic and the line, on an injected clock (no sleeping)."""

from __future__ import annotations

import pytest

from hlv_assets.lib.progress import Progress, format_duration, maybe_progress


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _progress(total: int, every_s: float = 5.0):
    clock, lines = Clock(), []
    return Progress(total, lines.append, what="label_logits", unit="prompts", every_s=every_s, clock=clock), clock, lines


def test_rate_limited_to_one_line_every_few_seconds():
    p, clock, lines = _progress(100)
    for step in range(1, 50):  # 49 updates over 4.9 s: no line yet
        clock.t += 0.1
        p.update(step)
    assert lines == []
    clock.t += 0.1  # 5.0 s after the start
    p.update(50)
    assert len(lines) == 1
    clock.t += 4.9
    p.update(60)
    assert len(lines) == 1  # 4.9 s after the last line
    clock.t += 0.1
    p.update(70)
    assert len(lines) == 2


def test_rate_and_eta_arithmetic():
    p, clock, lines = _progress(1364)
    clock.t += 20.0
    p.update(320)  # 320 prompts in 20 s: 16 prompts/s; 1044 left: 65.25 s
    assert p.rate() == pytest.approx(16.0)
    assert p.eta_s() == pytest.approx(65.25)
    assert lines == ["label_logits: 320/1364 prompts (23%), 16.0 prompts/s, ETA 1 min 05 s"]


def test_the_last_line_is_always_written_once_with_the_elapsed_time():
    p, clock, lines = _progress(10)
    clock.t += 0.5
    p.update(10)  # 0.5 s after the start: under the limit, but the loop is done
    p.update(10)
    p.advance(3)  # clamped to the total, not written again
    assert lines == ["label_logits: 10/10 prompts (100%), 20.0 prompts/s, done in 0 s"]


def test_unknown_rate_before_any_progress():
    p, clock, lines = _progress(8, every_s=1.0)
    clock.t += 2.0
    p.update(0)
    assert p.rate() is None and p.eta_s() is None
    assert lines == ["label_logits: 0/8 prompts (0%), ? prompts/s, ETA unknown"]


def test_advance_counts_up():
    p, clock, lines = _progress(4, every_s=0.0)
    for _ in range(4):
        clock.t += 1.0
        p.advance()
    assert lines[0] == "label_logits: 1/4 prompts (25%), 1.0 prompts/s, ETA 3 s"
    assert lines[-1] == "label_logits: 4/4 prompts (100%), 1.0 prompts/s, done in 4 s"
    assert len(lines) == 4


def test_format_duration_and_bad_input():
    assert [format_duration(s) for s in (0, 42.4, 59.6, 65.25, 3599, 7620)] == [
        "0 s", "42 s", "1 min 00 s", "1 min 05 s", "59 min 59 s", "2 h 07 min"]
    with pytest.raises(ValueError, match="non-negative"):
        Progress(-1, print, what="x")
    assert maybe_progress(5, None, what="x") is None and maybe_progress(0, print, what="x") is None
    assert isinstance(maybe_progress(5, print, what="x"), Progress)
