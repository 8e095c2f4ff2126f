"""docs/components.md stays true: it is the page the first-party plugins generate, every one of
their options is described in its factory's docstring, and the recipe examples name real options."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import pytest

from cyclegen import Domain
from cyclegen.component_reference import (
    COMMAND,
    FIRST_PARTY,
    GUIDES,
    first_party,
    option_descriptions,
    parse_options,
    render,
    render_component,
)
from cyclegen.errors import PluginError
from cyclegen.plugins import BLOCK_ENV, load_plugins
from cyclegen.registry import KINDS, Component, Kind, _options_model

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "components.md"
LOCAL_PLUGIN = ROOT / "docs" / "examples" / "moons_local.py"


@pytest.fixture(autouse=True)
def without_installed_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where cyclegen-moons is installed, it would clash with the local file in this process."""
    monkeypatch.setenv(BLOCK_ENV, "moons")


def test_page_is_current() -> None:
    assert PAGE.read_text() == render(), f"{PAGE} is stale: regenerate it with `{COMMAND}`"


def test_page_leaves_out_other_plugins() -> None:
    """A local plugin's components are loaded, but the page is the same without them."""
    loaded = load_plugins([str(LOCAL_PLUGIN)])
    assert "moons" in loaded.registry.names("domain")
    page = render(loaded)
    assert page == PAGE.read_text()
    assert "`moons`" not in page and "huber" not in page


def test_every_first_party_option_is_described() -> None:
    provided = first_party(load_plugins())
    assert {item.distribution for item in provided} == {"cyclegen", "cyclegen-wasserstein", "cyclegen-fidelity"}
    for item in provided:
        component = item.component
        label = f"{component.kind} {component.name!r} ({component.factory.__module__}.{component.factory.__qualname__})"
        options = component.options()
        descriptions = option_descriptions(component.factory)
        for option in options:
            assert descriptions.get(option, "").strip(), (
                f"{label}: option {option!r} has no description; add a line `{option}: ...` to the "
                "Options: section of its docstring (docs/writing-plugins.md, Describing options)"
            )
        stale = sorted(set(descriptions) - set(options))
        assert not stale, f"{label}: its docstring describes {stale}, which are not options"


# -- the recipe examples of each kind ------------------------------------------------------


def named_components(kind: Kind, recipe: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(component name, its options) for every component of `kind` that an example names."""
    metrics = [m if isinstance(m, dict) else {"type": m} for m in recipe.get("eval", {}).get("metrics", [])]
    tables: list[dict[str, Any]]
    if kind in ("domain", "mapper", "critic"):
        tables = list(recipe[f"{kind}s"].values())
    elif kind == "adversarial_loss":
        table = dict(recipe["adversarial"])
        table.pop("penalty", None)
        tables = [{"type": table.pop("loss"), **table}]
    elif kind == "penalty":
        tables = [recipe["adversarial"]["penalty"]]
    elif kind == "reconstruction_loss":
        tables = [{"type": term["loss"]} for term in recipe["terms"]]
    elif kind == "metric":
        tables = [{k: v for k, v in m.items() if k != "features"} for m in metrics]
    else:
        features = [m["features"] for m in metrics if "features" in m]
        tables = [f if isinstance(f, dict) else {"type": f} for f in features]
    engine_keys = {"from", "to", "domain", "history"}
    return [
        (table["type"], {k: v for k, v in table.items() if k != "type" and k not in engine_keys}) for table in tables
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_has_an_example_with_real_options(kind: Kind) -> None:
    registry = load_plugins().registry
    named = named_components(kind, tomllib.loads(GUIDES[kind].example))
    assert named, f"the {kind} example names no {kind}"
    for name, options in named:
        component = registry.get(kind, name, f"the {kind} example")
        _options_model(component).model_validate(options)  # raises on an unknown or mistyped option


# -- the convention, for anyone's plugin ---------------------------------------------------


class Line(Domain):
    """Points on a segment of the x axis.

    Only the first paragraph is the page's summary.

    Options:
        length: How long the segment is,
            in units of the x axis.
        spread: Where the points lie | along it.

    After the section, prose again.
    """

    def __init__(
        self, name: str, length: float = 1.0, spread: Literal["even", "random"] = "random", count: int | None = None
    ) -> None:
        super().__init__(name, (2,))


class ThickLine(Line):
    """A line of some thickness.

    Options:
        thickness: Half the width, across the x axis.
    """

    def __init__(self, name: str, thickness: float, length: float = 2.0) -> None:
        super().__init__(name, length)


def table_rows(section: str) -> dict[str, list[str]]:
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[cells[0]] = cells[1:]
    return rows


def test_a_plugin_factory_renders_its_descriptions() -> None:
    section = render_component(Component("domain", "line", Line, "local:line", "local"), "cyclegen-line")
    assert section.startswith("### `line`\n\nPlugin `local:line`, distribution `cyclegen-line`.\n\n")
    assert "Points on a segment of the x axis." in section and "first paragraph" not in section
    assert "prose" not in section
    rows = table_rows(section)
    assert list(rows) == ["`length`", "`spread`", "`count`"]  # `name` is the engine's, not an option
    assert rows["`length`"] == ["`float`", "`1.0`", "How long the segment is, in units of the x axis."]
    assert rows["`spread`"] == ['`"even" \\| "random"`', '`"random"`', "Where the points lie \\| along it."]
    assert rows["`count`"] == ["`int \\| None`", "unset", ""]


def test_a_subclass_inherits_descriptions() -> None:
    section = render_component(Component("domain", "thick", ThickLine, "local:line", "local"), "cyclegen-line")
    rows = table_rows(section)
    assert rows["`thickness`"] == ["`float`", "required", "Half the width, across the x axis."]
    assert rows["`length`"] == ["`float`", "`2.0`", "How long the segment is, in units of the x axis."]


def test_a_function_factory_renders_its_descriptions() -> None:
    def huber(delta: float = 1.0) -> object:
        """A Huber loss.

        Options:
            delta: Where the loss turns from squared to linear.
        """
        return object()

    rows = table_rows(render_component(Component("reconstruction_loss", "huber", huber, "p", "1"), "d"))
    assert rows == {"`delta`": ["`float`", "`1.0`", "Where the loss turns from squared to linear."]}


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ("Summary.\n\nOptions:\n    size: Big.\n  stray\n", "is not `name: description`"),
        ("Summary.\n\nOptions:\n    not an entry\n", "is not `name: description`"),
        ("Summary.\n\nOptions:\n    size: Big.\n    size: Small.\n", "describes 'size' twice"),
    ],
)
def test_a_malformed_options_section_is_named(doc: str, problem: str) -> None:
    with pytest.raises(PluginError, match=problem) as info:
        parse_options(doc, "my_plugin.Thing")
    assert str(info.value).startswith("my_plugin.Thing: ")


def test_a_blocked_first_party_plugin_is_an_error_not_a_shorter_page(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BLOCK_ENV, "moons,images")
    with pytest.raises(PluginError, match=f"plugin\\(s\\) images of cyclegen did not load.*{BLOCK_ENV}"):
        render()


def test_a_missing_first_party_distribution_is_named_with_its_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FIRST_PARTY, "cyclegen-absent", "pip install -e plugins/cyclegen-absent")
    with pytest.raises(PluginError, match="cyclegen-absent is not installed.*pip install -e plugins/cyclegen-absent"):
        render()
