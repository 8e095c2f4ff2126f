"""Recipe parsing, overrides and the messages a user sees for mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cyclegen.errors import RecipeError
from cyclegen.recipe import apply_overrides, load_recipe, parse_recipe
from tests.conftest import aegan_data, write_recipe


def test_valid_recipe_parses_and_infers_term_kinds() -> None:
    recipe, _ = parse_recipe(aegan_data())
    kinds = [term.kind for term in recipe.terms]
    assert kinds == ["adversarial"] * 4 + ["reconstruction"] * 2
    assert recipe.mappers["G"].source == "z" and recipe.mappers["G"].target == "x"
    assert recipe.mappers["G"].options == {"hidden": 16, "depth": 1}
    assert recipe.optim["mappers"].clip.per_tensor == 1.0


def test_typo_in_a_key_names_the_key_and_the_fix() -> None:
    data = aegan_data()
    data["train"]["stpes"] = data["train"].pop("steps")
    with pytest.raises(RecipeError) as info:
        parse_recipe(data, "my.toml")
    message = str(info.value)
    assert "train.stpes: unknown key" in message
    assert "did you mean 'steps'?" in message


def test_typo_in_a_term_key_is_caught() -> None:
    data = aegan_data()
    data["terms"][4]["wieght"] = 3
    with pytest.raises(RecipeError, match=r"terms.4.wieght: unknown key; did you mean 'weight'\?"):
        parse_recipe(data)


def test_reconstruction_term_without_loss_is_explained() -> None:
    data = aegan_data()
    del data["terms"][4]["loss"]
    with pytest.raises(RecipeError, match="needs `loss`"):
        parse_recipe(data)


def test_explicit_kind_must_agree_with_fields() -> None:
    data = aegan_data()
    data["terms"][0]["kind"] = "reconstruction"
    with pytest.raises(RecipeError, match="has no critic"):
        parse_recipe(data)


def test_overrides_parse_toml_values_and_plain_strings() -> None:
    data = apply_overrides(
        aegan_data(),
        ["train.steps=7", "adversarial.loss=hinge", "terms.4.weight=2.5", "optim.mappers.betas=[0.0, 0.9]"],
    )
    assert data["train"]["steps"] == 7
    assert data["adversarial"]["loss"] == "hinge"
    assert data["terms"][4]["weight"] == 2.5
    assert data["optim"]["mappers"]["betas"] == [0.0, 0.9]


@pytest.mark.parametrize(
    ("override", "message"),
    [("train.steps", "expected KEY=VALUE"), ("terms.9.weight=1", "needs an index from 0 to 5"), ("seed.x=1", "is a value")],
)
def test_bad_overrides_are_explained(override: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        apply_overrides(aegan_data(), [override])


def test_override_typo_is_caught_by_validation(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, aegan_data())
    with pytest.raises(RecipeError, match="train.step: unknown key; did you mean 'steps'"):
        load_recipe(path, ["train.step=5"])


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(RecipeError, match="not valid TOML"):
        load_recipe(bad)
