"""Graph checks before training, and path evaluation with shared prefixes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from cyclegen.errors import RecipeError
from cyclegen.experiment import open_recipe
from cyclegen.graph import Route
from tests.conftest import aegan_data, write_recipe


def build(tmp_path: Path, data: dict) -> object:
    return open_recipe(write_recipe(tmp_path, data))


def test_path_through_a_mapper_from_the_wrong_domain(tmp_path: Path) -> None:
    data = aegan_data()
    data["terms"][0]["path"] = "x -> G"
    with pytest.raises(RecipeError) as info:
        build(tmp_path, data)
    assert "terms[0].path 'x -> G': mapper 'G' maps z -> x, but the path reaches it in domain 'x'" in str(info.value)


def test_unknown_mapper_in_a_path(tmp_path: Path) -> None:
    data = aegan_data()
    data["terms"][1]["path"] = "x -> Enc -> G"
    with pytest.raises(RecipeError, match="unknown mapper 'Enc'; did you mean 'E'"):
        build(tmp_path, data)


def test_critic_must_judge_the_domain_the_path_ends_in(tmp_path: Path) -> None:
    data = aegan_data()
    data["terms"][2]["critic"] = "Dx"
    with pytest.raises(RecipeError, match="critic 'Dx' judges domain 'x', but path 'x -> E' ends in 'z'"):
        build(tmp_path, data)


def test_reconstruction_must_return_to_its_start(tmp_path: Path) -> None:
    data = aegan_data()
    data["terms"][4]["path"] = "x -> E"
    with pytest.raises(RecipeError, match="must return to its start domain 'x' but ends in 'z'"):
        build(tmp_path, data)


def test_untrained_networks_are_reported(tmp_path: Path) -> None:
    data = aegan_data()
    data["terms"] = [t for t in data["terms"] if t.get("critic") != "Dz"]
    data["mappers"]["H"] = {"type": "mlp", "from": "x", "to": "x"}
    data["optim"]["mappers"]["networks"].append("H")
    with pytest.raises(RecipeError) as info:
        build(tmp_path, data)
    assert "mapper 'H' is trained by no term" in str(info.value)
    assert "critic 'Dz' judges no term" in str(info.value)


WRONG_SHAPE_PLUGIN = """
import torch
from cyclegen import Mapper, hookimpl


class ThreeOut(Mapper):
    def __init__(self, source, target):
        super().__init__(source, target)
        self.lin = torch.nn.Linear(source.shape[0], 3)

    def forward(self, x):
        return self.lin(x)


@hookimpl
def cyclegen_register(registry):
    registry.mapper("three-out", ThreeOut)
"""


def test_shape_mismatch_is_found_before_training(tmp_path: Path) -> None:
    (tmp_path / "three.py").write_text(WRONG_SHAPE_PLUGIN)
    data = aegan_data()
    data["plugins"] = ["three.py"]
    data["mappers"]["G"] = {"type": "three-out", "from": "z", "to": "x"}
    with pytest.raises(RecipeError, match=r"mappers.G: produces shape \(3,\) but domain 'x' holds samples of shape \(2,\)"):
        build(tmp_path, data)


def test_path_parsing_and_text() -> None:
    path = Route.parse(" x ->E->  G ", "t")
    assert path == Route("x", ("E", "G"))
    assert str(path) == "x -> E -> G"
    for bad in ["x", "x -> ", "-> G", ""]:
        with pytest.raises(RecipeError, match="must be a domain followed by one or more mappers"):
            Route.parse(bad, "t")


def test_shared_prefixes_are_computed_once(aegan_recipe: Path) -> None:
    graph = open_recipe(aegan_recipe).graph
    calls: Counter[str] = Counter()
    for name, mapper in graph.mappers.items():
        mapper.register_forward_hook(lambda *_, name=name: calls.update([name]))
    paths = list(dict.fromkeys(term.path for term in graph.terms))
    inputs = {"x": torch.randn(4, 2), "z": torch.randn(4, 3)}
    outputs = graph.evaluate(paths, inputs)
    # x -> E, x -> E -> G, z -> G, z -> G -> E: four distinct prefixes, four mapper calls.
    assert calls == Counter({"E": 2, "G": 2})
    expected = graph.mappers["G"](graph.mappers["E"](inputs["x"]))
    assert torch.equal(outputs[Route("x", ("E", "G"))], expected)
