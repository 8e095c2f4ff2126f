"""TensorBoard logging: what the event files hold, read back with TensorBoard's own reader."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegen.run import train_recipe
from cyclegen.tensorboard import (
    TENSORBOARD,
    TensorBoardLog,
    first_rewritten_step,
    series_name,
)
from tests.conftest import aegan_data, write_recipe

try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
except ImportError:
    EventAccumulator = None

needs_tensorboard = pytest.mark.skipif(
    EventAccumulator is None, reason='tensorboard is not installed (pip install -e ".[dev]" brings it)'
)

RECORDS = [
    {
        "step": 5,
        "time": 1_700_000_000.25,
        "steps_per_s": 12.5,
        "losses": {"critic Dx": 0.75, "cycle x -> E -> G": 0.125},
        "lr": {"mappers": 1e-3, "critic": 5e-4},
        "critic spread": {"Dx": 1.5},
        "warnings": ["Dx may have collapsed"],
    },
    {
        "step": 10,
        "time": 1_700_000_003.5,
        "steps_per_s": 10.0,
        "losses": {"critic Dx": 0.5, "cycle x -> E -> G": 0.0625},
        "lr": {"mappers": 5e-4, "critic": 2.5e-4},
    },
]


def read(directory: Path) -> EventAccumulator:
    """Every event in `directory`, as TensorBoard's Python reader sees it (0: keep them all)."""
    reader = EventAccumulator(str(directory), size_guidance={"scalars": 0, "images": 0})
    reader.Reload()
    return reader


def series(reader: EventAccumulator, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in reader.Scalars(tag)]


@needs_tensorboard
def test_records_become_scalars_at_their_step_and_time(tmp_path: Path) -> None:
    log = TensorBoardLog(tmp_path)
    for record in RECORDS:
        log.record(record)
    log.close()
    reader = read(tmp_path)
    assert set(reader.Tags()["scalars"]) == {
        "speed/steps_per_s",
        "loss/critic Dx",
        "loss/cycle x -> E -> G",
        "lr/mappers",
        "lr/critic",
        "critic spread/Dx",
    }
    assert series(reader, "loss/cycle x -> E -> G") == [(5, 0.125), (10, 0.0625)]
    assert series(reader, "speed/steps_per_s") == [(5, 12.5), (10, 10.0)]
    assert series(reader, "critic spread/Dx") == [(5, 1.5)]  # the section is absent from the second record
    assert [(step, pytest.approx(value)) for step, value in series(reader, "lr/mappers")] == [(5, 1e-3), (10, 5e-4)]
    assert [event.wall_time for event in reader.Scalars("lr/critic")] == [record["time"] for record in RECORDS]


@needs_tensorboard
def test_evaluation_is_tagged_by_group_and_metric(tmp_path: Path) -> None:
    log = TensorBoardLog(tmp_path)
    log.eval(20, {"G: z -> x": {"swd 32": 76.5, "ndb/k": 0.25}, "E: x -> z": {"mmd": 0.5}})
    log.close()
    reader = read(tmp_path)
    assert set(reader.Tags()["scalars"]) == {"eval/G: z -> x/swd 32", "eval/G: z -> x/ndb/k", "eval/E: x -> z/mmd"}
    assert series(reader, "eval/G: z -> x/swd 32") == [(20, 76.5)]
    assert series(reader, "eval/E: x -> z/mmd") == [(20, 0.5)]


def write_png(path: Path, pixels: np.ndarray, mode: str | None = None) -> Path:
    image = Image.fromarray(pixels)
    (image.convert(mode) if mode else image).save(path)
    return path


@needs_tensorboard
def test_sample_pictures_become_images_named_by_series(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (12, 20), dtype=np.uint8)
    colour = rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)
    samples = tmp_path / "samples"
    samples.mkdir()
    paths = [
        write_png(samples / "G-fixed-step000000300.png", grey),
        write_png(samples / "cycle-x-E-G-step000000300.png", colour),
        write_png(samples / "G-random-step000000300.png", colour, mode="P"),  # a palette PNG (a plot's)
    ]
    log = TensorBoardLog(tmp_path / "events")
    log.images(300, paths)
    log.close()
    reader = read(tmp_path / "events")
    assert set(reader.Tags()["images"]) == {"G-fixed", "cycle-x-E-G", "G-random"}
    shown = {tag: reader.Images(tag) for tag in reader.Tags()["images"]}
    assert all([event.step for event in events] == [300] for events in shown.values())
    assert [(event.width, event.height) for event in shown["G-fixed"]] == [(20, 12)]
    assert [(event.width, event.height) for event in shown["cycle-x-E-G"]] == [(7, 9)]
    decoded = {tag: np.asarray(Image.open(io.BytesIO(events[0].encoded_image_string))) for tag, events in shown.items()}
    np.testing.assert_array_equal(decoded["G-fixed"], np.repeat(grey[..., None], 3, axis=2))  # grey shown as RGB
    np.testing.assert_array_equal(decoded["cycle-x-E-G"], colour)
    np.testing.assert_array_equal(decoded["G-random"], np.asarray(Image.open(paths[2]).convert("RGB")))


def test_series_name_drops_only_the_step_suffix() -> None:
    assert series_name(Path("samples/G-fixed-step000000300.png")) == "G-fixed"
    assert series_name(Path("samples/cycle-x-E-G-step000001000.png")) == "cycle-x-E-G"
    assert series_name(Path("samples/steps-step000000000.png")) == "steps"


def test_a_resume_purges_the_steps_it_trains_again() -> None:
    assert first_rewritten_step(None) == 0  # a fresh start draws step 0's samples again
    assert first_rewritten_step(0) == 0
    assert first_rewritten_step(300) == 301  # step 300's log line and samples were written before its checkpoint


def write_steps(directory: Path, steps: range, offset: float, purge_step: int | None = None) -> None:
    log = TensorBoardLog(directory, purge_step)
    for step in steps:
        log.record({"step": step, "time": time.time(), "steps_per_s": 1.0, "losses": {"l1": step + offset}, "lr": {}})
    log.close()


def next_second() -> None:
    """Readers take event files in name order, whose first varying part is the second a writer
    started in; a resumed run starts in a later second than the run it resumes."""
    time.sleep(1.01 - time.time() % 1)


@needs_tensorboard
def test_purge_step_drops_the_earlier_writers_events_from_that_step(tmp_path: Path) -> None:
    write_steps(tmp_path, range(1, 11), offset=0.0)
    next_second()
    write_steps(tmp_path, range(6, 9), offset=0.5, purge_step=6)
    kept, resumed = [(step, float(step)) for step in range(1, 6)], [(6, 6.5), (7, 7.5), (8, 8.5)]
    assert series(read(tmp_path), "loss/l1") == kept + resumed


@needs_tensorboard
def test_without_purge_step_the_reader_shows_both_runs(tmp_path: Path) -> None:
    """Why a resumed run must pass purge_step: the Python reader keeps the replaced steps."""
    write_steps(tmp_path, range(1, 4), offset=0.0)
    next_second()
    write_steps(tmp_path, range(2, 4), offset=0.5)
    assert series(read(tmp_path), "loss/l1") == [(1, 1.0), (2, 2.0), (3, 3.0), (2, 2.5), (3, 3.5)]


@needs_tensorboard
def test_a_run_logs_into_its_tensorboard_folder(tmp_path: Path) -> None:
    log = TensorBoardLog.for_run(tmp_path, resumed_step=None)
    log.record(RECORDS[1])
    log.close()
    assert series(read(tmp_path / TENSORBOARD), "speed/steps_per_s") == [(10, 10.0)]


def test_missing_tensorboard_names_the_fix(tmp_path: Path) -> None:
    """A real failed import (None in sys.modules makes `import tensorboard` fail), in a fresh
    interpreter; importing cyclegen.tensorboard itself must not need the package."""
    code = textwrap.dedent("""
        import sys
        sys.modules["tensorboard"] = None
        from pathlib import Path
        from cyclegen.errors import RecipeError
        from cyclegen.tensorboard import TensorBoardLog, check_available
        assert "torch.utils.tensorboard" not in sys.modules
        for attempt in (check_available, lambda: TensorBoardLog(Path("unused"))):
            try:
                attempt()
            except RecipeError as exc:
                print(exc)
            else:
                sys.exit("no RecipeError")
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    messages = done.stdout.strip().splitlines()
    assert len(messages) == 2
    for message in messages:
        assert "needs the tensorboard package" in message
        assert 'pip install "cyclegen[tensorboard]"' in message
        assert "train.tensorboard = false" in message
    assert not (tmp_path / "unused").exists()  # refused before anything was written


@needs_tensorboard
def test_a_resumed_run_shows_each_step_once(tmp_path: Path) -> None:
    """Train with train.tensorboard, lose the last checkpoint as a kill would, resume: every
    scalar and picture is shown once per step, and the events match metrics.jsonl."""
    recipe = write_recipe(tmp_path, aegan_data(tensorboard=True))
    run_dir = tmp_path / "run"
    train_recipe(recipe, out=run_dir)
    for path in (run_dir / "checkpoints").iterdir():
        if path.name in ("latest", "step-000000020.safetensors"):
            path.unlink()
    next_second()
    train_recipe(recipe, out=run_dir)
    reader = read(run_dir / TENSORBOARD)
    logged = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert series(reader, "speed/steps_per_s") == [(r["step"], pytest.approx(r["steps_per_s"])) for r in logged]
    assert [e.step for e in reader.Scalars("loss/critic Dx")] == [5, 10, 15, 20]
    assert set(reader.Tags()["images"]) == {"G-fixed", "G-random", "cycle-x-E-G"}
    assert all([e.step for e in reader.Images(tag)] == [0, 10, 20] for tag in reader.Tags()["images"])
    evaluated = json.loads((run_dir / "eval.json").read_text())
    tags = set(reader.Tags()["scalars"])
    assert {f"eval/{group}/{name}" for group, values in evaluated.items() for name in values} <= tags
    assert series(reader, "eval/G: z -> x/kl") == [(20, pytest.approx(evaluated["G: z -> x"]["kl"]))]
