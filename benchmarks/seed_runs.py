"""What the per-seed benchmarks share: training a recipe through the `cyclegen` command line
and summarising a metric over seeds. Imported by toy_modes.py and stacked_mnist.py (a script's
folder is on its import path)."""

from __future__ import annotations

import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def cyclegen_command() -> list[str]:
    """The `cyclegen` executable next to this Python, else on PATH, else `python -m cyclegen`."""
    beside = Path(sys.executable).with_name("cyclegen")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("cyclegen")
    return [found] if found else [sys.executable, "-m", "cyclegen"]


def train_fresh(recipe: Path, out: Path, overrides: Sequence[str]) -> tuple[dict, float]:
    """`cyclegen run recipe --out out --set ...` into a fresh `out`; its eval.json and the wall seconds."""
    if out.exists():
        shutil.rmtree(out)  # a fresh run, never a resume
    command = [*cyclegen_command(), "run", str(recipe), "--out", str(out)]
    command += [part for item in overrides for part in ("--set", item)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return json.loads((out / "eval.json").read_text()), wall


def numbers(section: dict[str, float | None], wall: float) -> dict[str, float]:
    """An evaluation section with NaN for undefined (null) values, and the wall time."""
    result = {key: math.nan if value is None else float(value) for key, value in section.items()}
    result["wall s"] = wall
    return result


def summary_cell(values: list[float], decimals: int, worst: Callable[[list[float]], float] = min,
                 label: str = "min") -> str:
    """'mean ± std (label x)' over seeds, x the worst by `worst`; NaN values are counted apart."""
    finite = [v for v in values if math.isfinite(v)]
    missing = f" [{len(values) - len(finite)} NaN]" if len(finite) < len(values) else ""
    if not finite:
        return "n/a" + missing
    mean = statistics.fmean(finite)
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return f"{mean:.{decimals}f} ± {std:.{decimals}f} ({label} {worst(finite):.{decimals}f}){missing}"
