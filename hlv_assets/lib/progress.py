"""Progress lines for long loops (judging, generation, analyses): items done, rate and ETA, rate-limited.

Dagster-free: the caller passes where a line goes (`context.log.info` in an asset, `print` in a notebook).
The clock is injectable so the arithmetic and the rate limit are tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Seconds between two progress lines of one loop (the last line is always written).
DEFAULT_EVERY_S = 5.0


def format_duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `2 h 07 min` (rounded to the shown unit)."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class Progress:
    """Reports `done` of `total` units of one loop through `log`, at most once every `every_s` seconds.

    A line reads `<what>: 320/1364 prompts (23%), 14.2 prompts/s, ETA 1 min 14 s`; the final line (done ==
    total) is always written and gives the elapsed time instead of the ETA. The rate is the mean over the
    whole loop so far (units / elapsed seconds); the ETA is the remaining units at that rate.
    """

    def __init__(self, total: int, log: Callable[[str], None], *, what: str, unit: str = "items",
                 every_s: float = DEFAULT_EVERY_S, clock: Callable[[], float] = time.monotonic,
                 detail: Callable[[], str] | None = None) -> None:
        if total < 0:
            raise ValueError(f"total must be non-negative, got {total}")
        self.total = int(total)
        self.log = log
        self.what = what
        self.unit = unit
        self.every_s = float(every_s)
        self.clock = clock
        self.detail = detail  # extra figures for each line (e.g. prompts/s), after the rate
        self.done = 0
        self.base = 0  # units done before the clock (re)started: not part of the rate
        self.started = clock()
        self._last_line = self.started
        self._finished = False

    def rate(self) -> float | None:
        """Units per second so far (None before any unit is done or any time has passed)."""
        elapsed = self.clock() - self.started
        counted = self.done - self.base
        return counted / elapsed if counted and elapsed > 0 else None

    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (None while the rate is unknown)."""
        rate = self.rate()
        return (self.total - self.done) / rate if rate else None

    def line(self) -> str:
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        rate = self.rate()
        speed = f"{rate:.{1 if rate >= 1 else 2}f} {self.unit}/s" if rate is not None else f"? {self.unit}/s"
        if self.detail is not None:
            speed += f", {self.detail()}"
        if self.done >= self.total:
            tail = f"done in {format_duration(self.clock() - self.started)}"
        else:
            eta = self.eta_s()
            tail = f"ETA {format_duration(eta)}" if eta is not None else "ETA unknown"
        return f"{self.what}: {self.done}/{self.total} {self.unit}{pct}, {speed}, {tail}"

    def update(self, done: int) -> None:
        """Set the units done; write a line when `every_s` passed since the last one, or at the end."""
        self.done = min(int(done), self.total)
        now = self.clock()
        if self.done >= self.total:
            if not self._finished:
                self._finished = True
                self.log(self.line())
        elif now - self._last_line >= self.every_s:
            self._last_line = now
            self.log(self.line())

    def restart(self, done: int) -> None:
        """Count `done` units as done without timing them (e.g. answered from a cache): the rate and the ETA
        measure the units done from now on."""
        self.done = self.base = min(int(done), self.total)
        self.started = self.clock()

    def advance(self, n: int = 1) -> None:
        self.update(self.done + n)


def maybe_progress(total: int, log: Callable[[str], None] | None, **kwargs) -> Progress | None:
    """A `Progress` when there is somewhere to log and something to count, else None."""
    return Progress(total, log, **kwargs) if log is not None and total > 0 else None
