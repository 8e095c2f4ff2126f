"""The documentation stays true: its example plugin trains both ways, its quotes match the
example files, and the recipe reference matches the schema."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from pydantic import BaseModel
from typer.testing import CliRunner

from cyclegen.cli import app
from cyclegen.errors import RecipeError
from cyclegen.experiment import open_recipe
from cyclegen.plugins import load_plugins
from cyclegen.recipe import Recipe
from cyclegen.recipe_reference import COMMAND, render

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
TUTORIAL = DOCS / "writing-plugins.md"
LOCAL_PLUGIN = EXAMPLES / "moons_local.py"
PACKAGE = EXAMPLES / "cyclegen-moons"
#: Enough steps to log, checkpoint and evaluate; small enough to take seconds.
SHORT = ["train.steps=6", "train.log_every=3", "train.checkpoint_every=3", "train.sample_every=3",
         "train.batch_size=32", "train.sample_count=50", "eval.samples=200"]


@pytest.fixture(autouse=True)
def without_installed_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where cyclegen-moons is installed, it would clash with the local file in this process."""
    monkeypatch.setenv("CYCLEGEN_BLOCK_PLUGINS", "moons")


def set_args(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def assert_trained(run_dir: Path, steps: int) -> None:
    """The run logged every few steps up to `steps`, checkpointed the last one and evaluated."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == list(range(3, steps + 1, 3))
    assert "rec huber(x -> E -> G)" in lines[-1]["losses"]
    assert (run_dir / "checkpoints" / "latest").read_text() == f"step-{steps:09d}.safetensors"
    assert list((run_dir / "samples").glob("G-random-step*.png"))
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert set(evaluation["G: z -> x"]) == {"on moons %", "upper share"}


# -- the example plugin ---------------------------------------------------------------------


def test_example_plugin_keeps_the_contracts() -> None:
    registry = load_plugins([str(LOCAL_PLUGIN)]).registry
    moons = registry.build("domain", "moons", "domains.x", {"noise": 0.05}, name="x")
    a = moons.batch(4000, torch.Generator().manual_seed(1))
    b = moons.batch(4000, torch.Generator().manual_seed(1))
    assert a.shape == (4000, 2) and a.dtype == torch.float32 and torch.equal(a, b)
    scores = moons.metrics()[0].evaluate(a, moons, torch.Generator())
    assert scores["on moons %"] > 99 and abs(scores["upper share"] - 0.5) < 0.05
    shifted = moons.metrics()[0].evaluate(a + 1.0, moons, torch.Generator())
    assert shifted["on moons %"] < 50
    huber = registry.build("reconstruction_loss", "huber", "terms[0].loss", {})
    target, output = torch.randn(64, 2) * 2, torch.randn(64, 2) * 2
    loss = huber(target, output.half())
    assert loss.dtype == torch.float32
    assert torch.allclose(loss, F.huber_loss(output.half().float(), target, delta=1.0))


def test_local_plugin_file_trains_through_the_cli(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = ["run", str(EXAMPLES / "aae_moons_local.toml"), "--out", str(run_dir), *set_args(SHORT)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert_trained(run_dir, 6)
    recipe = (run_dir / "recipe.toml").read_text()
    assert json.dumps(str(LOCAL_PLUGIN.resolve())) in recipe  # the run finds the file from anywhere


@pytest.mark.parametrize(
    "override",
    ["domains.x.nosie=0.1", "domains.x.noise=lots", "domains.x.noise=-1", "terms.0.loss=hubber"],
)
def test_tutorial_shows_the_real_option_errors(override: str) -> None:
    with pytest.raises(RecipeError) as info:
        open_recipe(EXAMPLES / "aae_moons_local.toml", [override])
    assert f"error: {info.value}\n" in TUTORIAL.read_text()


def test_packaged_plugin_installs_with_pip_and_trains(tmp_path: Path) -> None:
    source = tmp_path / "source"  # building in place would leave build/ and *.egg-info in docs/
    shutil.copytree(PACKAGE, source)
    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)],
        capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stderr
    env = {**os.environ, "PYTHONPATH": str(target), "COLUMNS": "200"}
    env.pop("CYCLEGEN_BLOCK_PLUGINS", None)

    def cyclegen(*args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cyclegen", *args], cwd=tmp_path,
                              env={**env, **extra_env}, capture_output=True, text=True)

    listing = cyclegen("plugins")
    assert listing.returncode == 0, listing.stderr
    assert re.search(r"^\W*moons\W+0\.1\.0\W+domain\W+moons\W+noise\W*$", listing.stdout, re.MULTILINE), listing.stdout
    assert re.search(r"reconstruction_loss\W+huber\W", listing.stdout), listing.stdout

    run_dir = tmp_path / "run"
    run = cyclegen("run", str(EXAMPLES / "aegan_moons.toml"), "--out", str(run_dir), *set_args(SHORT))
    assert run.returncode == 0, run.stdout + run.stderr
    assert_trained(run_dir, 6)

    local_recipe = str(EXAMPLES / "aae_moons_local.toml")
    clash = cyclegen("validate", local_recipe)
    assert clash.returncode == 1 and "registered by both plugin" in clash.stderr, clash.stderr
    blocked = cyclegen("validate", local_recipe, CYCLEGEN_BLOCK_PLUGINS="moons")
    assert blocked.returncode == 0, blocked.stderr


def test_package_module_is_the_local_file() -> None:
    module = PACKAGE / "cyclegen_moons" / "__init__.py"
    assert module.read_text() == LOCAL_PLUGIN.read_text(), f"{module} must equal {LOCAL_PLUGIN}"


# -- quotes in the tutorial ----------------------------------------------------------------

FENCE = re.compile(r"^```\w*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
CLAIM = re.compile(r"(from )?`(docs/examples/[^`]+)`:$", re.IGNORECASE)


def quoted_files(markdown: str) -> list[tuple[str, bool, str]]:
    """(path, whole file?, code) for each fenced block right after a line naming an example file.

    A line ending "`docs/examples/x`:" claims the whole file; "From `docs/examples/x`:" an
    excerpt of it.
    """
    quotes = []
    for block in FENCE.finditer(markdown):
        before = markdown[: block.start()].rstrip("\n").rsplit("\n", 1)[-1]
        claim = CLAIM.search(before)
        if claim:
            quotes.append((claim.group(2), claim.group(1) is None, block.group(1)))
    return quotes


def test_tutorial_quotes_match_the_example_files() -> None:
    markdown = TUTORIAL.read_text()
    quotes = quoted_files(markdown)
    assert quotes, "the tutorial names no example file before a code block"
    covered: dict[str, list[bool]] = {}
    for path, whole, code in quotes:
        text = (ROOT / path).read_text()
        if whole:
            assert code == text, f"the tutorial's copy of {path} differs from the file"
        else:
            start = text.find(code)
            assert start >= 0, f"an excerpt of {path} in the tutorial is not in the file:\n{code}"
            mask = covered.setdefault(path, [False] * len(text))
            mask[start : start + len(code)] = [True] * len(code)
    plugin = LOCAL_PLUGIN.read_text()
    missed = "".join(char for char, seen in zip(plugin, covered[str(LOCAL_PLUGIN.relative_to(ROOT))]) if not seen)
    assert not missed.strip(), f"the tutorial leaves out part of {LOCAL_PLUGIN.name}: {missed.strip()!r}"
    quoted = {path for path, _, _ in quotes}
    for file in EXAMPLES.rglob("*"):
        if file.suffix in (".py", ".toml") and str(file.relative_to(ROOT)) not in quoted:
            assert file.read_text() == plugin, f"{file} is not shown in {TUTORIAL.name}"
    for mentioned in re.findall(r"docs/examples/[\w./-]*\w", markdown):
        assert (ROOT / mentioned).exists(), f"{TUTORIAL.name} names {mentioned}, which does not exist"


# -- the recipe reference ------------------------------------------------------------------

REFERENCE = DOCS / "recipe-reference.md"


def test_recipe_reference_is_current() -> None:
    assert REFERENCE.read_text() == render(), f"{REFERENCE} is stale: regenerate it with `{COMMAND}`"


def schema_models(model: type[BaseModel] = Recipe) -> list[type[BaseModel]]:
    """Every model reachable from `model` through its fields' annotations."""
    found = [model]

    def walk(annotation: object) -> None:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if annotation not in found:
                found.append(annotation)
                for field in annotation.model_fields.values():
                    walk(field.annotation)
        for arg in getattr(annotation, "__args__", ()):
            walk(arg)

    for field in model.model_fields.values():
        walk(field.annotation)
    return found


def test_reference_documents_every_section_and_key() -> None:
    sections: dict[str, dict[str, str]] = {}
    for chunk in REFERENCE.read_text().split("\n## ")[1:]:
        title, _, body = chunk.partition("\n")
        rows = sections[title] = {}
        for line in body.splitlines():
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            if cells and cells[0] not in ("key", "---"):
                rows[cells[0].strip("`")] = cells[-1]
    models = schema_models()
    assert len(models) == len(sections), "each table of the schema needs one section"
    for model in models:
        keys = {field.alias or name: field for name, field in model.model_fields.items()}
        if model.model_config.get("extra") == "allow":
            keys["*any other key*"] = None
        matches = [title for title, rows in sections.items() if rows.keys() == keys.keys()]
        assert matches, f"no section of {REFERENCE.name} lists exactly the keys of {model.__name__}: {sorted(keys)}"
        rows = sections[matches[0]]
        for key, field in keys.items():
            if field is not None:
                assert field.description, f"{model.__name__}.{key} needs a Field(description=...)"
                assert rows[key] == field.description.replace("|", "\\|")
            else:
                assert "cyclegen plugins" in rows[key]
