"""The engine-overhead and toy-modes benchmarks still run, at their smallest sizes, as subprocesses.

A benchmark that nothing runs rots silently when the engine moves on (the engine-overhead
benchmark compared the step's losses with the critics' score spreads appended, and stopped its
Run loop through a flag the loop no longer read); these runs make such a change fail here.
Both need no data; the benchmarks that read faces or MNIST are not run by the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_engine_overhead_checks_equal_work_and_times_all_three_ways(tmp_path: Path) -> None:
    report = tmp_path / "overhead.json"
    run_benchmark("engine_overhead.py", "--recipe", "toy", "--steps", "2", "--blocks", "2", "--warmup", "1",
                  "--check-steps", "2", "--json", str(report))
    (result,) = json.loads(report.read_text())["results"]
    assert result["check"]["passed"]
    assert result["check"]["losses_exact"] and result["check"]["weights_exact"]
    assert set(result["step_median_s"]) == {"hand", "trainer", "run"}
    assert all(seconds > 0 for seconds in result["step_median_s"].values())


def test_toy_modes_trains_scores_and_tabulates_a_seed(tmp_path: Path) -> None:
    done = run_benchmark("toy_modes.py", "--families", "aegan", "--datasets", "grid", "--seeds", "1", "--steps",
                         "20", "--workdir", str(tmp_path))
    assert "| grid | aegan | 1 |" in done.stdout
    assert "| grid | aegan raw | 1 |" in done.stdout  # the recipe's [ema]: also scored by its trained G
    assert (tmp_path / "aegan_grid_seed0" / "eval.json").is_file()


def test_toy_misses_splits_every_sample_into_mode_edge_or_bridge(tmp_path: Path) -> None:
    run_benchmark("toy_modes.py", "--families", "aegan", "--datasets", "ring", "--seeds", "1", "--steps", "20",
                  "--workdir", str(tmp_path))
    run = str(tmp_path / "aegan_ring_seed0")
    rows = {}
    for flag in ([], ["--raw-weights"]):
        done = run_benchmark("toy_misses.py", run, "-n", "3000", *flag)
        cells = [cell.strip() for cell in done.stdout.strip().splitlines()[-1].strip("|").split("|")]
        within, edge, bridge = (float(cell) for cell in cells[2:5])
        assert abs(within + edge + bridge - 100) < 0.2  # every sample in exactly one of the three
        assert len(cells[6].split(" / ")) == 4  # the miss rate in each code-norm bin
        rows[cells[1]] = within
    assert set(rows) == {"EMA of G, E", "trained"}
