"""Progress on long work: a rich bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class Reporter:
    """Shows steps/s, ETA and the main losses; prints one line per log step off a terminal."""

    def __init__(self, total: int, start: int, console: Console | None = None) -> None:
        self.console = console or Console()
        self.total = total
        self.start_step = start
        self.started = time.perf_counter()
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
        rate = self.steps_per_second(step)
        shown = "  ".join(f"{name}={value:.3g}" for name, value in (losses or {}).items())
        if self.progress is not None:
            fields = {"rate": f"{rate:.1f} steps/s"}
            if losses is not None:
                fields["losses"] = shown
            self.progress.update(self.task, completed=step, **fields)
        elif losses is not None:
            remaining = (self.total - step) / rate if rate > 0 else float("nan")
            self.console.print(
                f"step {step}/{self.total}  {rate:.1f} steps/s  eta {remaining:.0f}s  {shown}",
                highlight=False,
                soft_wrap=True,
            )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
