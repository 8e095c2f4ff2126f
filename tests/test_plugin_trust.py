"""A run directory's local plugins are code: commands on a run directory run them only with
--trust-plugins; and relative plugin paths resolve against the recipe that names them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cyclegen.cli import app
from cyclegen.plugins import load_plugins
from cyclegen.toml_writer import dumps
from tests.conftest import aegan_data, write_recipe
from tests.test_plugins import LOCAL_PLUGIN

runner = CliRunner()
#: The plugin of tests/test_plugins.py, leaving a mark beside itself when its code runs.
MARKING_PLUGIN = "from pathlib import Path\nPath(__file__).with_suffix('.ran').touch()\n" + LOCAL_PLUGIN
#: Every command on a run directory, with the arguments it needs besides the run directory.
RUN_DIR_COMMANDS = [
    ("sample",), ("eval",), ("encode", "in.png"), ("reconstruct", "in.png"), ("translate", "in.png"),
    ("interpolate", "--random"),
]


def line_data() -> dict[str, Any]:
    """The tiny AEGAN with its data domain from the local plugin file `line_plugin.py`."""
    data = aegan_data()
    data["plugins"] = ["line_plugin.py"]
    data["domains"]["x"] = {"type": "line", "length": 2.0}
    return data


def untrained_run(directory: Path, plugins: list[str]) -> Path:
    """A run directory as training leaves it before the first checkpoint: its recipe.toml only."""
    run_dir = directory / "run"
    run_dir.mkdir()
    data = line_data()
    data["plugins"] = plugins
    (run_dir / "recipe.toml").write_text(dumps(data))
    return run_dir


def invoke(*args: object) -> object:
    return runner.invoke(app, [str(arg) for arg in args])


@pytest.mark.parametrize("command", RUN_DIR_COMMANDS, ids=lambda command: command[0])
def test_a_run_directory_with_a_local_plugin_needs_trust(tmp_path: Path, command: tuple[str, ...]) -> None:
    plugin = tmp_path / "line_plugin.py"
    plugin.write_text(MARKING_PLUGIN)
    run_dir = untrained_run(tmp_path, [str(plugin)])
    result = invoke(command[0], run_dir, *command[1:])
    assert result.exit_code == 1, result.output
    assert f"names local plugins: {plugin}" in result.output
    assert "A local plugin is code" in result.output and "pass --trust-plugins" in result.output
    assert "Traceback" not in result.output
    assert not plugin.with_suffix(".ran").exists()


@pytest.mark.parametrize("command", RUN_DIR_COMMANDS, ids=lambda command: command[0])
def test_trust_plugins_lets_a_command_load_them(tmp_path: Path, command: tuple[str, ...]) -> None:
    plugin = tmp_path / "line_plugin.py"
    plugin.write_text(MARKING_PLUGIN)
    run_dir = untrained_run(tmp_path, [str(plugin)])
    result = invoke(command[0], run_dir, *command[1:], "--trust-plugins")
    assert "has no readable checkpoint yet" in result.output  # past the plugins, built the graph
    assert plugin.with_suffix(".ran").exists()


def test_a_fresh_process_refuses_before_running_any_plugin_code(tmp_path: Path) -> None:
    plugin = tmp_path / "line_plugin.py"
    plugin.write_text(MARKING_PLUGIN)
    run_dir = untrained_run(tmp_path, [str(plugin)])
    done = subprocess.run([sys.executable, "-m", "cyclegen", "sample", str(run_dir)],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert "pass --trust-plugins" in done.stderr
    assert not plugin.with_suffix(".ran").exists()


def test_trained_run_samples_with_its_local_plugin_when_trusted(tmp_path: Path) -> None:
    (tmp_path / "line_plugin.py").write_text(LOCAL_PLUGIN)
    run_dir = tmp_path / "run"
    trained = invoke("run", write_recipe(tmp_path, line_data()), "--out", run_dir, "--set", "train.steps=10")
    assert trained.exit_code == 0, trained.output  # training from a recipe you name needs no flag
    refused = invoke("sample", run_dir, "--out", tmp_path / "s.npy")
    assert refused.exit_code == 1 and "pass --trust-plugins" in refused.output
    sampled = invoke("sample", run_dir, "--out", tmp_path / "s.npy", "--trust-plugins")
    assert sampled.exit_code == 0, sampled.output


def test_an_installed_module_needs_no_trust(tmp_path: Path) -> None:
    """A first-party plugin named again by module: installed code, loaded once."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_recipe(run_dir, {**aegan_data(), "plugins": ["cyclegen_mlp"]})
    result = invoke("sample", run_dir)
    assert "has no readable checkpoint yet" in result.output, result.output


def test_a_module_shipped_in_the_run_directory_needs_trust(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m cyclegen` puts the current folder on sys.path: a module there is not installed."""
    run_dir = untrained_run(tmp_path, ["sneaky_line"])
    (run_dir / "sneaky_line.py").write_text(MARKING_PLUGIN)
    monkeypatch.chdir(run_dir)
    monkeypatch.syspath_prepend(str(run_dir))
    result = invoke("sample", ".")
    assert result.exit_code == 1
    assert "names local plugins: sneaky_line." in result.output
    assert not (run_dir / "sneaky_line.ran").exists()


def test_relative_plugin_paths_resolve_against_the_recipe_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "line_plugin.py").write_text(LOCAL_PLUGIN)
    recipe = write_recipe(recipes, line_data())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "line_plugin.py").write_text("raise RuntimeError('the plugin beside the current folder ran')\n")
    monkeypatch.chdir(elsewhere)
    result = invoke("validate", Path("..") / "recipes" / recipe.name)
    assert result.exit_code == 0, result.output


def test_a_run_directory_recipe_resolves_relative_plugins_against_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run directory moved, or a recipe.toml written by hand, may hold a relative path."""
    run_dir = untrained_run(tmp_path, ["line_plugin.py"])
    (run_dir / "line_plugin.py").write_text(LOCAL_PLUGIN)
    monkeypatch.chdir(tmp_path)
    refused = invoke("sample", "run")
    assert f"names local plugins: {(run_dir / 'line_plugin.py').resolve()}" in refused.output
    trusted = invoke("sample", "run", "--trust-plugins")
    assert "has no readable checkpoint yet" in trusted.output, trusted.output


def test_a_blocked_local_plugin_file_is_never_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = tmp_path / "marked.py"
    plugin.write_text(MARKING_PLUGIN)
    monkeypatch.setenv("CYCLEGEN_BLOCK_PLUGINS", "local:marked")
    assert "line" not in load_plugins([str(plugin)]).registry.names("domain")
    assert not plugin.with_suffix(".ran").exists()
