"""Plugin discovery, local plugins, blocking, and the errors for unknown names."""

from __future__ import annotations

from pathlib import Path

import pytest

from cyclegen.errors import PluginError, RecipeError
from cyclegen.experiment import open_recipe
from cyclegen.plugins import load_plugins
from tests.conftest import aegan_data, write_recipe

LOCAL_PLUGIN = '''
import torch
from cyclegen import Domain, hookimpl

__version__ = "1.2.3"


class Line(Domain):
    """Points on a segment of the x axis."""

    def __init__(self, name: str, length: float = 1.0) -> None:
        super().__init__(name, (2,))
        self.length = length

    def batch(self, n, generator, split="train"):
        x = torch.rand(n, 1, generator=generator) * self.length
        return torch.cat([x, torch.zeros(n, 1)], 1)


@hookimpl
def cyclegen_register(registry):
    registry.domain("line", Line)
'''


def test_first_party_plugins_come_through_entry_points() -> None:
    plugins = load_plugins()
    names = {info.name for info in plugins.infos}
    assert {"priors", "toy2d", "mlp", "losses"} <= names
    registry = plugins.registry
    assert {"ring", "grid", "gaussian", "uniform"} <= set(registry.names("domain"))
    assert {"bce", "lsgan", "hinge"} <= set(registry.names("adversarial_loss"))
    assert {"l1", "l2"} <= set(registry.names("reconstruction_loss"))
    assert registry.get("domain", "grid", "x").plugin == "toy2d"
    assert all(info.version != "unknown" for info in plugins.infos)


def test_blocking_a_plugin_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CYCLEGEN_BLOCK_PLUGINS", "toy2d, losses")
    registry = load_plugins().registry
    assert "grid" not in registry.names("domain")
    assert "bce" not in registry.names("adversarial_loss")
    assert "gaussian" in registry.names("domain")


def test_unknown_component_lists_names_and_closest_match(tmp_path: Path) -> None:
    data = aegan_data()
    data["domains"]["x"]["type"] = "grdi"
    with pytest.raises(RecipeError) as info:
        open_recipe(write_recipe(tmp_path, data))
    message = str(info.value)
    assert "domains.x: unknown domain 'grdi'; did you mean 'grid'?" in message
    assert "Available: gaussian, grid, images, ring, stacked-mnist, uniform" in message


def test_unknown_loss_names_the_key(tmp_path: Path) -> None:
    data = aegan_data()
    data["adversarial"] = {"loss": "hinj"}
    with pytest.raises(RecipeError, match=r"adversarial.loss: unknown adversarial loss 'hinj'; did you mean 'hinge'\?.*bce, hinge, lsgan"):
        open_recipe(write_recipe(tmp_path, data))


def test_typo_in_a_plugin_option_suggests_the_option(tmp_path: Path) -> None:
    data = aegan_data()
    data["mappers"]["G"]["hiden"] = 8
    with pytest.raises(RecipeError, match=r"mappers.G.hiden: mapper 'mlp' has no option 'hiden'; did you mean 'hidden'\?"):
        open_recipe(write_recipe(tmp_path, data))


def test_plugin_option_of_the_wrong_type(tmp_path: Path) -> None:
    data = aegan_data()
    data["mappers"]["G"]["activation"] = "swishy"
    with pytest.raises(RecipeError, match="mappers.G.activation"):
        open_recipe(write_recipe(tmp_path, data))


def test_local_plugin_file_named_by_the_recipe(tmp_path: Path) -> None:
    (tmp_path / "line_plugin.py").write_text(LOCAL_PLUGIN)
    data = aegan_data()
    data["plugins"] = ["line_plugin.py"]
    data["domains"]["x"] = {"type": "line", "length": 2.0}
    recipe_dir = tmp_path / "recipes"
    recipe_dir.mkdir()
    (recipe_dir / "line_plugin.py").write_text(LOCAL_PLUGIN)
    exp = open_recipe(write_recipe(recipe_dir, data))
    assert exp.graph.domains["x"].length == 2.0
    assert exp.plugins.versions()["local:line_plugin"] == "1.2.3"
    assert exp.resolved["plugins"] == [str((recipe_dir / "line_plugin.py").resolve())]


def test_missing_local_plugin_file(tmp_path: Path) -> None:
    data = aegan_data()
    data["plugins"] = ["nowhere.py"]
    with pytest.raises(PluginError, match=r"nowhere.py' not found; paths in a recipe's `plugins` are relative"):
        open_recipe(write_recipe(tmp_path, data))


def test_same_name_from_two_plugins_is_an_error(tmp_path: Path) -> None:
    clash = tmp_path / "clash.py"
    clash.write_text(LOCAL_PLUGIN.replace('"line"', '"grid"'))
    with pytest.raises(PluginError, match="registered by both plugin 'toy2d' and plugin 'local:clash'"):
        load_plugins([str(clash)])


def test_plugin_that_fails_to_import_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    broken = importlib.metadata.EntryPoint("broken", "cyclegen_no_such_module", "cyclegen")
    real = importlib.metadata.entry_points
    monkeypatch.setattr(
        importlib.metadata, "entry_points", lambda group: [*real(group=group), broken]
    )
    with pytest.raises(PluginError, match="plugin 'broken' .* failed to import.*CYCLEGEN_BLOCK_PLUGINS=broken"):
        load_plugins()
    monkeypatch.setenv("CYCLEGEN_BLOCK_PLUGINS", "broken")
    assert "grid" in load_plugins().registry.names("domain")


def test_misspelled_hook_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad_hook.py"
    bad.write_text("from cyclegen import hookimpl\n\n@hookimpl\ndef cyclegen_registr(registry):\n    pass\n")
    with pytest.raises(PluginError, match="cyclegen_registr"):
        load_plugins([str(bad)])
