"""Progress on long work: a rich bar on a terminal, plain lines by time and by step otherwise.

Two audiences use it. A run reports its steps through `Reporter`. Plugins report work done
while a recipe is opened (decoding a dataset, loading weights) through `note` and `task`,
which print to stderr (or where `printing_to` says), so a user sees within seconds what a
long start-up is doing, also when the output is piped to a file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

#: Seconds between plain progress lines when the output is not a terminal.
PLAIN_EVERY_S = 30.0
#: A run's first speed estimate comes after this many seconds of training (or `FIRST_STEPS`).
FIRST_ESTIMATE_S = 3.0
FIRST_STEPS = 50

#: Where `note` and `task` print: stderr, so that a command's own output (`eval --json`) stays
#: clean, unless a run prints its start-up there (`printing_to`).
_console = Console(stderr=True)


@contextmanager
def printing_to(console: Console) -> Iterator[None]:
    """Send `note` and `task` to `console` inside the block (a run's start-up goes with its log)."""
    global _console
    previous, _console = _console, console
    try:
        yield
    finally:
        _console = previous


def note(message: str) -> None:
    """One line about work being done, e.g. "x: 29,992 images from the cache"."""
    _console.print(message, highlight=False, soft_wrap=True)


@contextmanager
def task(description: str, total: int, every_s: float = 10.0) -> Iterator[Callable[[int], None]]:
    """Report progress on `total` units of work; yields `advance(units)`.

    A bar on a terminal; otherwise a line when it starts, one every `every_s` seconds and one
    when it ends, so a log file shows that a slow start-up is alive.
    """
    started = time.perf_counter()
    done = 0
    if _console.is_terminal:
        with Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=_console, transient=True) as bar:
            handle = bar.add_task(description, total=total)

            def advance_bar(units: int) -> None:
                nonlocal done
                done += units
                bar.update(handle, completed=done)

            yield advance_bar
    else:
        note(f"{description}: {total:,} to do")
        last = started

        def advance_line(units: int) -> None:
            nonlocal done, last
            done += units
            now = time.perf_counter()
            if now - last >= every_s:
                last = now
                note(f"{description}: {done:,}/{total:,} ({done / max(total, 1):.0%}, {now - started:.0f} s)")

        yield advance_line
    note(f"{description}: {done:,} done in {duration(time.perf_counter() - started)}")


def duration(seconds: float) -> str:
    """'45 s', '12 min', '3.4 h': a duration at the precision an estimate deserves."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Reporter:
    """Shows a run's steps/s, ETA and main losses: a bar on a terminal, else one line per log
    step and one every `PLAIN_EVERY_S` seconds. Once the first steps are timed it prints the
    speed and the estimated duration, and `on_estimate` may add to it (a GPU recipe on a CPU)."""

    def __init__(
        self,
        total: int,
        start: int,
        console: Console | None = None,
        on_estimate: Callable[[float], None] | None = None,
    ) -> None:
        self.console = console or Console()
        self.total = total
        self.start_step = start
        self.started = time.perf_counter()
        self.last_line = self.started
        self.losses = ""
        self.estimated = start >= total
        self.on_estimate = on_estimate
        self.progress: Progress | None = None
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[losses]}"),
                console=self.console,
            )
            self.task = self.progress.add_task("train", total=total, completed=start, rate="", losses="")
            self.progress.start()

    def steps_per_second(self, step: int) -> float:
        elapsed = time.perf_counter() - self.started
        return (step - self.start_step) / elapsed if elapsed > 0 else 0.0

    def update(self, step: int, losses: dict[str, float] | None = None) -> None:
        """Advance to `step`; `losses` (at log steps) refreshes the shown losses."""
        now = time.perf_counter()
        rate = self.steps_per_second(step)
        if losses is not None:
            self.losses = "  ".join(f"{name}={value:.3g}" for name, value in losses.items())
        if not self.estimated and (now - self.started >= FIRST_ESTIMATE_S or step - self.start_step >= FIRST_STEPS):
            self.estimated = True
            self._estimate(step, rate)
        if self.progress is not None:
            fields = {"rate": f"{rate:.1f} steps/s", "losses": self.losses}
            self.progress.update(self.task, completed=step, **fields)
        elif losses is not None or now - self.last_line >= PLAIN_EVERY_S:
            self.last_line = now
            remaining = (self.total - step) / rate if rate > 0 else float("nan")
            eta = duration(remaining) if remaining == remaining else "?"
            self.console.print(
                f"step {step:,}/{self.total:,}  {rate:.1f} steps/s  eta {eta}  {self.losses}",
                highlight=False,
                soft_wrap=True,
            )

    def _estimate(self, step: int, rate: float) -> None:
        timed = step - self.start_step
        seconds_per_step = 1 / rate if rate > 0 else float("inf")
        remaining = (self.total - step) * seconds_per_step
        self.console.print(
            f"timed the first {timed:,} steps: {rate:.3g} steps/s ({seconds_per_step:.3g} s/step); "
            f"the remaining {self.total - step:,} steps take about {duration(remaining)}",
            highlight=False,
            soft_wrap=True,
        )
        if self.on_estimate is not None:
            self.on_estimate(remaining)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
