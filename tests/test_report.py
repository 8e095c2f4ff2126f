"""`cyclegen report`: one self-contained, escaped HTML page of a run, checked as text and in a real browser."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cyclegen.cli import app
from cyclegen.report import pick_samples
from cyclegen.svg_chart import PALETTE, Series, line_chart
from tests.conftest import aegan_data, cyclegan_data, write_recipe

runner = CliRunner()
IMAGE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
#: Attributes of the charts that carry coordinates: all must be finite numbers.
COORDINATES = re.compile(r'\b(?:x|y|x1|y1|x2|y2|cx|cy|width|height|points)="([^"]*)"')
HOSTILE = "<script>alert(1)</script>"


def invoke(*args: object) -> object:
    return runner.invoke(app, [str(a) for a in args])


def train(directory: Path, data: dict) -> Path:
    run_dir = directory / "run"
    result = invoke("run", write_recipe(directory, data), "--out", run_dir)
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny AEGAN: log lines at steps 5-20, three sample series at steps 0, 10 and 20."""
    return train(tmp_path_factory.mktemp("aegan"), aegan_data())


@pytest.fixture
def run_copy(trained_run: Path, tmp_path: Path) -> Path:
    """A copy of the trained run that a test may damage."""
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


def report(run_dir: Path, *extra: object) -> str:
    result = invoke("report", run_dir, *extra)
    assert result.exit_code == 0, result.output
    out = Path(extra[extra.index("--out") + 1]) if "--out" in extra else run_dir / "report.html"
    assert f"wrote report to {out}" in result.output
    return out.read_text()


def log_lines(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def append(run_dir: Path, text: str) -> None:
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write(text)


def assert_finite_charts(page: str) -> None:
    svgs = re.findall(r"<svg.*?</svg>", page, re.DOTALL)
    assert svgs
    for svg in svgs:
        for value in COORDINATES.findall(svg):
            numbers = [float(n) for n in re.split(r"[ ,]+", value.strip()) if n]
            assert numbers and all(math.isfinite(n) for n in numbers), value


def test_page_is_self_contained_with_charts_samples_and_metrics(trained_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "nested" / "page.html"
    page = report(trained_run, "--out", out)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "Content-Security-Policy" in page

    losses = log_lines(trained_run)[-1]["losses"]
    assert page.count("<svg") == 6  # critic, adversarial, reconstruction, learning rate, critic spread, throughput
    for name in losses:
        assert f">{name.replace('->', '-&gt;')}</text>" in page, name
    assert "20 of 20" in page and "step 20 (2 kept)" in page and "tiny-aegan" in page
    assert_finite_charts(page)

    images = IMAGE.findall(page)
    files = sorted((trained_run / "samples").glob("*.png"))
    assert {p.name.rsplit("-step", 1)[0] for p in files} == {"G-fixed", "G-random", "cycle-x-E-G"}
    assert len(images) == len(files) == 9
    assert {base64.b64decode(data) for data in images} == {p.read_bytes() for p in files}
    for series in ("G-fixed", "G-random", "cycle-x-E-G"):
        assert f"<h3>{series} <small>3 of 3 shown</small>" in page

    evaluation = json.loads((trained_run / "eval.json").read_text())
    for group, values in evaluation.items():
        assert group.replace("->", "-&gt;") in page
        for name, value in values.items():
            assert f"<td>{name}</td><td class=\"num\">{value:.4g}</td>" in page


def test_default_output_is_in_the_run_directory(run_copy: Path) -> None:
    page = report(run_copy)
    assert page.startswith("<!DOCTYPE html>") and (run_copy / "report.html").is_file()


def test_long_series_show_first_spread_and_last_samples(run_copy: Path) -> None:
    picture = next((run_copy / "samples").glob("G-fixed-*.png")).read_bytes()
    for step in range(0, 200, 10):
        (run_copy / "samples" / f"many-step{step:09d}.png").write_bytes(picture)
    page = report(run_copy)
    assert "<h3>many <small>8 of 20 shown; 12 skipped to keep the page small</small>" in page
    shown = re.findall(r'alt="many at step (\d+)"', page)
    assert len(shown) == 8 and shown[0] == "0" and shown[-1] == "190"
    assert len(IMAGE.findall(page)) == 9 + 8


def test_the_size_budget_keeps_fewer_pictures(trained_run: Path) -> None:
    sizes = sorted(p.stat().st_size for p in (trained_run / "samples").glob("G-fixed-*.png"))
    picked = pick_samples(trained_run / "samples", budget=3 * sizes[-1])  # a third each: G-fixed's largest fits
    fixed = next(series for series in picked if series.name == "G-fixed")
    assert 1 <= len(fixed.shown) < 3 and fixed.shown[-1][0] == 20 and fixed.total == 3
    assert all(series.shown == [] for series in pick_samples(trained_run / "samples", budget=3))


def test_strings_from_the_run_dir_are_escaped(trained_run: Path, tmp_path: Path) -> None:
    run_dir = Path(shutil.copytree(trained_run, tmp_path / f"run{HOSTILE}"))
    record = log_lines(run_dir)[-1]
    record.update(step=25, losses={**record["losses"], f"rec {HOSTILE}": 0.5}, warnings=[f"<img src=x onerror=alert(2)> {HOSTILE}"])
    append(run_dir, json.dumps(record) + "\n")
    evaluation = json.loads((run_dir / "eval.json").read_text())
    evaluation[f"<b>{HOSTILE}</b>"] = {HOSTILE: 1.0}
    (run_dir / "eval.json").write_text(json.dumps(evaluation))
    with open(run_dir / "recipe.toml", "a") as handle:
        handle.write(f"# </pre></details>{HOSTILE}\n")

    page = report(run_dir)
    assert "<script" not in page and "<img src=x" not in page
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"rec {escaped}</text>" in page  # the legend of the reconstruction chart
    assert f"<li><b>step 25</b>: &lt;img src=x onerror=alert(2)&gt; {escaped}</li>" in page
    assert f"&lt;b&gt;{escaped}&lt;/b&gt;" in page and f"<td>{escaped}</td>" in page
    assert f"# &lt;/pre&gt;&lt;/details&gt;{escaped}" in page
    assert f"run{escaped}" in page


def test_a_torn_last_line_is_skipped(run_copy: Path) -> None:
    append(run_copy, '{"step": 25, "time": 1.0, "losses": {"critic Dx": 0.')
    page = report(run_copy)
    assert "The last line of metrics.jsonl is torn" in page
    assert "20 of 20" in page and page.count("<svg") == 6
    assert_finite_charts(page)


def test_non_finite_and_odd_values_are_not_drawn(run_copy: Path) -> None:
    record = log_lines(run_copy)[-1]
    record.update(step=25, losses={**record["losses"], "critic Dx": float("nan"), "critic Dz": float("inf")})
    record["lr"] = {"mappers": "fast", "image_critic": None, "latent_critic": True}
    huge = "1" + "0" * 400  # an integer no float holds
    odd = ["[1, 2]", '{"step": "3"}', f'{{"step": {huge}}}', f'{{"step": 22, "time": {huge}, "losses": {{"critic Dx": {huge}}}}}']
    append(run_copy, "\n".join([*odd, json.dumps(record)]) + "\n")
    page = report(run_copy)
    assert "3 other unreadable line(s)" in page and "torn" not in page
    assert "25 of 20" in page
    assert_finite_charts(page)


def test_eval_lines_are_plotted_over_steps(run_copy: Path) -> None:
    for step, covered, kl in ((10, 12.0, 0.9), (20, 18.0, 0.4)):
        append(run_copy, json.dumps({"step": step, "eval": {"G: z -> x": {"modes covered": covered, "kl": kl}}}) + "\n")
    page = report(run_copy)
    assert "<h2>Evaluation over training</h2>" in page
    assert page.count("<svg") == 6 + 2
    assert 'aria-label="G: z -&gt; x: modes covered"' in page and 'aria-label="G: z -&gt; x: kl"' in page
    assert "20 of 20" in page  # eval lines are not training steps
    assert_finite_charts(page)


def test_a_run_without_metrics_yet_still_gets_a_page(run_copy: Path) -> None:
    for name in ("metrics.jsonl", "eval.json"):
        (run_copy / name).unlink()
    shutil.rmtree(run_copy / "samples")
    page = report(run_copy)
    assert "No metrics logged yet" in page and "every 5 steps" in page
    assert "eval.json is missing" in page and "No sample pictures" in page
    assert "<svg" not in page


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_what_is_not_a_run_directory_is_refused(tmp_path: Path, make: str) -> None:
    target = tmp_path / "target"
    if make == "empty":
        target.mkdir()
    elif make == "file":
        target.write_text("x")
    result = invoke("report", target)
    assert result.exit_code == 1
    expected = {"missing": "does not exist", "empty": "is not a run directory", "file": "is a file"}[make]
    assert expected in result.output and "Traceback" not in result.output


def test_a_folder_as_output_is_refused(trained_run: Path, tmp_path: Path) -> None:
    result = invoke("report", trained_run, "--out", tmp_path)
    assert result.exit_code == 1
    assert f"{tmp_path} is a folder: give the report a file name" in result.output


def test_translation_series_are_shown(tmp_path: Path) -> None:
    run_dir = train(tmp_path, cyclegan_data(sample_every=6))
    page = report(run_dir)
    for series in ("F-translation", "H-translation", "cycle-a-F-H", "cycle-b-H-F"):
        assert f"<h3>{series} <small>3 of 3 shown</small>" in page
    assert "identity terms" in page


@pytest.mark.parametrize("points", [[(7, 2.5)], [(0, 1.0), (5, 1.0), (10, 1.0)], [(0, 0.0), (1, 0.0)]])
def test_single_points_and_constant_series_are_drawn(points: list[tuple[float, float]]) -> None:
    svg = line_chart("one <&> two", [Series("s", points), Series("empty", [(1, float("nan"))])])
    assert "one &lt;&amp;&gt; two" in svg and "empty (no finite values)" in svg
    assert svg.count("<circle") == len(points)
    assert_finite_charts(svg)


def chromium() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def test_the_page_renders_in_a_real_browser(trained_run: Path, tmp_path: Path) -> None:
    browser = chromium()
    if browser is None:
        pytest.skip("Chromium not found: apt-get install chromium to run this check")
    page = tmp_path / "report.html"
    report(trained_run, "--out", page)
    shot = tmp_path / "shot.png"
    done = subprocess.run(  # headless Chromium may complain on stderr (no DBus): only the exit code and PNG count
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={shot}", "--window-size=1200,2000", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=90, check=False,
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    assert len(pixels) == 1200 * 2000
    assert len(np.unique(pixels, axis=0)) > 500  # charts and samples: a page of plain text has under 100
    assert (pixels != 255).any(1).mean() > 0.02  # a blank page is all white
    for colour in PALETTE[:3]:  # the first three series of the loss charts, legend swatches included
        wanted = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        near = (np.abs(pixels - wanted) <= 8).all(1).sum()
        assert near > 100, f"chart colour {colour} not on screen ({near} pixels)"
