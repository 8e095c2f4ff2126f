"""CycleGAN end to end on images: sketch <-> colour recipes, true-pair evaluation, `translate`.

Tiny faces (16x16 generated images) and tiny networks; the shipped recipes are opened with
their sources pointed at them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from cyclegen.cli import app
from cyclegen.experiment import open_recipe
from tests.conftest import NO_FACES, SHARED_ZIP
from tests.test_shipped_recipes import CYCLEGAN, RECIPES

runner = CliRunner()
TINY = [
    "train.steps=3", "train.batch_size=2", "train.device='cpu'", "train.sample_every=2", "train.checkpoint_every=2",
    "train.sample_count=6", "eval.samples=50",
    "domains.sketch.size=16", "domains.colour.size=16", "domains.sketch.cache='off'", "domains.colour.cache='off'",
    "domains.sketch.test_fraction=0.25", "domains.colour.test_fraction=0.25",
    "mappers.F.width=4", "mappers.H.width=4", "mappers.F.blocks=1", "mappers.H.blocks=1",
    "critics.Dsketch.width=4", "critics.Dcolour.width=4", "critics.Dsketch.layers=1", "critics.Dcolour.layers=1",
    "critics.Dsketch.history=3", "critics.Dcolour.history=3",
]


def face(i: int) -> Image.Image:
    """A coloured disc with a dark outline on a light background: it has edges to sketch."""
    image = Image.new("RGB", (24, 24), (230, 230, 210))
    draw = ImageDraw.Draw(image)
    draw.ellipse((3 + i % 4, 3, 20, 20 - i % 3), fill=(40 * (i % 6), 120, 255 - 30 * (i % 5)), outline=(0, 0, 0), width=2)
    return image


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    for i in range(24):
        face(i).save(root / f"{i:02d}.png")
    return root


def sources(faces: Path) -> list[str]:
    return [f"domains.sketch.source={str(faces)!r}", f"domains.colour.source={str(faces)!r}"]


def overrides(items: list[str]) -> list[str]:
    return [part for item in items for part in ("--set", item)]


@pytest.mark.parametrize("recipe", CYCLEGAN, ids=lambda p: p.stem)
def test_cyclegan_recipes_follow_the_paper(recipe: Path, faces: Path) -> None:
    exp = open_recipe(recipe, sources(faces) + ["domains.sketch.cache='off'", "domains.colour.cache='off'"])
    graph, spec = exp.graph, exp.recipe
    backward = 1.0 if recipe.stem.endswith("_small") else 10.0  # the CPU preset's one departure, in its header
    assert [(t.label, t.weight) for t in graph.terms] == [
        ("adv Dcolour(sketch -> F)", 1.0), ("adv Dsketch(colour -> H)", 1.0),
        ("rec l1(sketch -> F -> H)", 10.0), ("rec l1(colour -> H -> F)", backward),
        ("idt l1(colour -> F)", 5.0), ("idt l1(sketch -> H)", 5.0),
    ]
    critics = [(c.type, c.options, c.history) for c in spec.critics.values()]
    assert critics[0] == critics[1]  # one critic for both domains
    assert spec.adversarial.loss == "lsgan" and all(c.history == 50 for c in spec.critics.values())
    assert all(o.lr == 2e-4 and o.betas == (0.5, 0.999) for o in spec.optim.values())
    assert all(o.lr_schedule.type == "linear-decay" and o.lr_schedule.steps(spec.train.steps) == (spec.train.steps // 2, spec.train.steps)
               for o in spec.optim.values())
    sketch, colour = graph.domains["sketch"], graph.domains["colour"]
    assert set(sketch.splits["train"].tolist()).isdisjoint(colour.splits["train"].tolist())
    assert sketch.held_out()[0] == colour.held_out()[0]


@pytest.fixture(scope="module")
def trained(faces: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("cyclegan") / "run"
    args = ["run", str(RECIPES / "cyclegan_anime_sketch_small.toml"), "--out", str(run_dir)]
    result = runner.invoke(app, args + overrides(sources(faces) + TINY))
    assert result.exit_code == 0, result.output
    return run_dir


def test_training_writes_translations_and_scores_them_against_true_pairs(trained: Path) -> None:
    samples = {p.name for p in (trained / "samples").iterdir()}
    assert {"F-translation-step000000003.png", "H-translation-step000000003.png",
            "cycle-sketch-F-H-step000000003.png", "cycle-colour-H-F-step000000003.png"} <= samples
    metrics = json.loads((trained / "eval.json").read_text())
    for section in ("F: sketch -> colour vs true pairs", "H: colour -> sketch vs true pairs"):
        assert metrics[section]["pairs"] == 6  # a quarter of 24 faces held out, in both views
        assert 0 < metrics[section]["l1"] < 2 and metrics[section]["psnr"] > 0
    assert "identity: colour -> F" in metrics
    # a colourised sketch is sketched again and compared with its input; a drawn sketch cannot be
    redrawn = metrics["F: sketch -> colour vs true pairs"]
    assert 0 < redrawn["redrawn l1"] < 2 and redrawn["redrawn psnr"] > 0
    assert not any(key.startswith("redrawn") for key in metrics["H: colour -> sketch vs true pairs"])
    assert 0 <= metrics["F: sketch -> colour"]["pairwise l1 ratio"]  # the one-face collapse reads near 0


def test_eval_command_matches_the_run(trained: Path) -> None:
    result = runner.invoke(app, ["eval", str(trained), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads((trained / "eval.json").read_text())


def test_translate_writes_input_output_pairs(trained: Path, faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "translated.png"
    result = runner.invoke(app, ["translate", str(trained), "--mapper", "F", str(faces), "--limit", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "5 translations by F (sketch -> colour)" in result.output
    with Image.open(out) as grid:
        assert grid.mode == "RGB" and grid.size[1] > 16  # pairs of 16x16 images with padding


def test_translate_needs_a_mapper_when_there_are_two(trained: Path, faces: Path) -> None:
    result = runner.invoke(app, ["translate", str(trained), str(faces)])
    assert result.exit_code == 1
    assert "choose the mapper with --mapper" in result.output and "F, H" in result.output


@pytest.mark.skipif(not SHARED_ZIP.exists(), reason=NO_FACES)
def test_small_preset_trains_on_the_anime_faces(tmp_path: Path) -> None:
    items = [
        *[f"domains.{d}.{key}" for d in ("sketch", "colour") for key in (f"source={str(SHARED_ZIP)!r}", "limit=200")],
        "train.steps=2", "train.sample_count=4", "eval.samples=20",
    ]
    args = ["run", str(RECIPES / "cyclegan_anime_sketch_small.toml"), "--out", str(tmp_path / "run")]
    result = runner.invoke(app, args + overrides(items))
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert metrics["F: sketch -> colour vs true pairs"]["pairs"] == 10  # 5% of 200 held out
