"""The component reference, generated from the first-party plugins so that it cannot fall behind them.

    python -m cyclegen.component_reference > docs/components.md

For each kind and each component it gives the plugin and distribution that provide it, the
first paragraph of the factory's docstring, and a table of the recipe options: the names,
types and defaults come from the factory's signature (the parameters `Component.options()`
gives, so the arguments the engine passes itself are left out), the descriptions from the
`Options:` section of its docstring (`option_descriptions`; docs/writing-plugins.md documents
the convention).

Only components that ship with this repository are listed: those registered by the entry
points of the distributions in `FIRST_PARTY` (cyclegen itself, cyclegen-wasserstein and
cyclegen-fidelity), recognised by the distribution each loaded plugin came from
(`PluginInfo.source`). Other installed plugins and a recipe's local plugin files are left out,
so the page is the same on every machine; `cyclegen plugins` shows what one installation has.
A first-party plugin that is not installed or is blocked is an error, not a shorter page.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from cyclegen.catalogue import FIDELITY, WASSERSTEIN
from cyclegen.errors import PluginError
from cyclegen.plugins import BLOCK_ENV, ENTRY_POINT_GROUP, Plugins, load_plugins
from cyclegen.recipe_reference import toml_literal
from cyclegen.registry import KINDS, Component, Kind, _type_hints

COMMAND = "python -m cyclegen.component_reference > docs/components.md"
#: The distributions whose components the page lists, and how each is installed.
FIRST_PARTY: dict[str, str] = {
    "cyclegen": "pip install -e . (from the cyclegen source tree)",
    WASSERSTEIN.name: WASSERSTEIN.install,
    FIDELITY.name: FIDELITY.install,
}
#: The docstring line that opens the option descriptions.
OPTIONS_HEADER = "Options:"
_ENTRY = re.compile(r"(?P<name>[A-Za-z_]\w*):(?:\s+(?P<text>.*))?")


@dataclass(frozen=True)
class KindGuide:
    """How the page introduces one kind: its heading, where a recipe names it, an example."""

    title: str
    named_by: str
    where: str
    example: str


GUIDES: dict[Kind, KindGuide] = {
    "domain": KindGuide(
        "Domains",
        "`[domains.<name>] type`",
        "A `[domains.<name>]` table names the domain by `type`; its other keys are the options.",
        '[domains.x]\ntype = "images"\nsource = "data/anime-faces"\nsize = 32',
    ),
    "mapper": KindGuide(
        "Mappers",
        "`[mappers.<name>] type`",
        "A `[mappers.<name>]` table names the network by `type`; its keys besides `from` and `to` are "
        "the options.",
        '[mappers.G]\ntype = "mlp"\nfrom = "z"\nto = "x"\nhidden = 256',
    ),
    "critic": KindGuide(
        "Critics",
        "`[critics.<name>] type`",
        "A `[critics.<name>]` table names the network by `type`; its keys besides `domain`, `history` and `pack` "
        "are the options.",
        '[critics.Dx]\ntype = "mlp"\ndomain = "x"\ndepth = 4',
    ),
    "adversarial_loss": KindGuide(
        "Adversarial losses",
        "`[adversarial] loss`",
        "`[adversarial]` names the loss every critic uses by `loss`; its keys besides `penalty` are the "
        "options.",
        '[adversarial]\nloss = "bce"\nlabel_smoothing = 0.05',
    ),
    "penalty": KindGuide(
        "Penalties",
        "`[adversarial] penalty`",
        "`[adversarial] penalty` is an inline table that names the penalty by `type`, beside its options.",
        '[adversarial]\nloss = "hinge"\npenalty = { type = "r1", weight = 5 }',
    ),
    "reconstruction_loss": KindGuide(
        "Reconstruction losses",
        "`[[terms]] loss`",
        "A reconstruction or identity term names its loss by `loss`; reconstruction losses take no "
        "options.",
        '[[terms]]\npath = "x -> E -> G"\nloss = "l1"\nweight = 10',
    ),
    "metric": KindGuide(
        "Metrics",
        "`[eval] metrics`",
        "`[eval] metrics` lists metrics by name, or as inline tables that name one by `type` beside "
        "its options.",
        '[eval]\nmetrics = ["fid", { type = "kid", subsets = 10 }]',
    ),
    "features": KindGuide(
        "Feature extractors",
        "a feature metric's `features`",
        "A feature metric's `features` option names the extractor, or is an inline table that names "
        "it by `type` beside its options.",
        '[eval]\nmetrics = [{ type = "fid", features = { type = "inception", batch = 25 } }]',
    ),
}

INTRO = f"""\
# Component reference

Generated from the first-party plugins by `cyclegen/component_reference.py`; change the
factories' docstrings (their `Options:` sections, see `docs/writing-plugins.md`) or
signatures, not this file, and regenerate it with

    {COMMAND}

Every component that ships with cyclegen and its plugin distributions cyclegen-wasserstein
and cyclegen-fidelity, by kind. A recipe names a component and writes its options beside the
name, as the examples of each kind show; the options are checked against the factory's
signature before anything trains, so a misspelt one is reported with the closest match.
`docs/recipe-reference.md` lists the keys around them, and `cyclegen plugins` lists what an
installation has, other plugins included. A default of "unset" means the option is left out.
"""


@dataclass(frozen=True)
class Provided:
    """A registered component and the distribution its plugin came from."""

    component: Component
    distribution: str


def parse_options(doc: str | None, owner: str = "a docstring") -> dict[str, str]:
    """The `name: text` entries of the `Options:` section of `doc` (none without one).

    Entries sit one indentation level below the header; lines indented further continue the
    entry above; the section ends at the first line indented no deeper than the header.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == OPTIONS_HEADER), None)
    if start is None:
        return {}
    header = _indent(lines[start])
    entries: dict[str, list[str]] = {}
    entry_indent: int | None = None
    current = ""
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        indent = _indent(line)
        if indent <= header:
            break
        entry_indent = indent if entry_indent is None else entry_indent
        if indent > entry_indent:
            entries[current].append(line.strip())
            continue
        match = _ENTRY.fullmatch(line.strip())
        if indent < entry_indent or match is None:
            raise PluginError(
                f"{owner}: the line {line.strip()!r} of its {OPTIONS_HEADER} section is not "
                "`name: description` at the entries' indentation; indent a continuation deeper than "
                "the entries (docs/writing-plugins.md, Describing options)"
            )
        current = match["name"]
        if current in entries:
            raise PluginError(f"{owner}: its {OPTIONS_HEADER} section describes {current!r} twice; keep one")
        entries[current] = [match["text"] or ""]
    return {name: " ".join(filter(None, parts)) for name, parts in entries.items()}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def option_descriptions(factory: Callable[..., Any]) -> dict[str, str]:
    """Each option's description from the factory's docstring. A class also takes those its
    base classes describe (a nearer class's wins), so options shared through a base are described once."""
    owners = inspect.getmro(factory) if inspect.isclass(factory) else (factory,)
    found: dict[str, str] = {}
    for owner in reversed(owners):
        found.update(parse_options(owner.__doc__, _label(owner)))
    return found


def _label(factory: Any) -> str:
    return f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', repr(factory))}"


def summary(factory: Callable[..., Any]) -> str:
    """The first paragraph of the factory's own docstring (not a base class's), on one line."""
    paragraph = re.split(r"\n\s*\n", inspect.cleandoc(factory.__doc__ or ""), maxsplit=1)[0]
    lines = []
    for line in paragraph.splitlines():
        if line.strip() == OPTIONS_HEADER:
            break
        lines.append(line.strip())
    return " ".join(lines)


def type_text(annotation: Any) -> str:
    """A Python-style name for an option's type: `int`, `float | None`, `"a" | "b"` for a Literal."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_text(args[0])
    if origin is Literal:
        return " | ".join(toml_literal(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_text(arg) for arg in args)
    if annotation is None or annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    if annotation is Any:
        return "Any"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join(type_text(arg) for arg in args)}]" if args else name
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def default_text(param: inspect.Parameter) -> str:
    if param.default is inspect.Parameter.empty:
        return "required"
    if param.default is None:
        return "unset"
    return f"`{toml_literal(param.default)}`"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def render_component(component: Component, distribution: str) -> str:
    """One component's section: heading, provider, summary and its options table."""
    lines = [f"### `{component.name}`", "", f"Plugin `{component.plugin}`, distribution `{distribution}`.", ""]
    if text := summary(component.factory):
        lines += [text, ""]
    options = component.options()
    if not options:
        return "\n".join([*lines, "No options."])
    hints = _type_hints(component.factory)
    descriptions = option_descriptions(component.factory)
    lines += [_row("option", "type", "default", "description"), _row("---", "---", "---", "---")]
    for name, param in options.items():
        annotation = hints.get(name, param.annotation)
        kind = "any" if annotation is inspect.Parameter.empty else type_text(annotation)
        lines.append(_row(f"`{name}`", f"`{kind}`", default_text(param), descriptions.get(name, "")))
    return "\n".join(lines)


def first_party(loaded: Plugins) -> list[Provided]:
    """The components of the first-party distributions, by kind (in `KINDS` order), then by name."""
    distributions = {info.name: info.source for info in loaded.infos if info.source in FIRST_PARTY}
    return [
        Provided(component, distributions[component.plugin])
        for kind in KINDS
        for _, component in sorted(loaded.registry.components[kind].items())
        if component.plugin in distributions
    ]


def check_complete(loaded: Plugins) -> None:
    """Fail when a first-party plugin did not load: the page would silently leave it out."""
    loaded_names = {info.name for info in loaded.infos if info.source in FIRST_PARTY}
    for distribution, install in FIRST_PARTY.items():
        try:
            entries = importlib.metadata.distribution(distribution).entry_points.select(group=ENTRY_POINT_GROUP)
        except importlib.metadata.PackageNotFoundError:
            raise PluginError(
                f"the distribution {distribution} is not installed, so the component reference would leave "
                f"out its components; install it with: {install}"
            ) from None
        missing = sorted({entry.name for entry in entries} - loaded_names)
        if missing:
            raise PluginError(
                f"the first-party plugin(s) {', '.join(missing)} of {distribution} did not load, so the "
                f"component reference would leave them out; remove them from {BLOCK_ENV}"
            )


def render(loaded: Plugins | None = None) -> str:
    """The whole reference as markdown, from `loaded` (by default every installed plugin)."""
    loaded = load_plugins() if loaded is None else loaded
    check_complete(loaded)
    by_kind = {kind: [item for item in first_party(loaded) if item.component.kind == kind] for kind in KINDS}
    overview = [_row("kind", "named by", "components"), _row("---", "---", "---")]
    for kind, items in by_kind.items():
        guide = GUIDES[kind]
        names = ", ".join(f"`{item.component.name}`" for item in items)
        overview.append(_row(f"[{guide.title}](#{_anchor(guide.title)})", guide.named_by, names))
    blocks = [INTRO.rstrip(), "\n".join(overview)]
    for kind, items in by_kind.items():
        guide = GUIDES[kind]
        blocks += [f"## {guide.title}", guide.where, f"```toml\n{guide.example}\n```"]
        blocks += [render_component(item.component, item.distribution) for item in items]
    return "\n\n".join(blocks) + "\n"


def _anchor(title: str) -> str:
    """The anchor GitHub gives a heading of plain words."""
    return title.lower().replace(" ", "-")


if __name__ == "__main__":
    sys.stdout.write(render())
