"""The recipe reference, generated from the pydantic schema so that it cannot fall behind it.

    python -m cyclegen.recipe_reference > docs/recipe-reference.md

Sections, keys, types, defaults, constraints and allowed values come from the models in
`cyclegen.recipe`; the text comes from their docstrings and `Field(description=...)`.
"""

from __future__ import annotations

import inspect
import json
import sys
import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from cyclegen.recipe import Recipe

COMMAND = "python -m cyclegen.recipe_reference > docs/recipe-reference.md"
PLACEHOLDER = "<name>"

INTRO = f"""\
# Recipe reference

Generated from the schema in `cyclegen/recipe.py`; change the schema's docstrings and
descriptions, not this file, and regenerate it with

    {COMMAND}

`docs/concepts.md` explains what the parts do.

A recipe is one TOML file. `cyclegen validate` checks it without training, and
`--set key.sub=value` overrides any key from the command line (`--set terms.0.weight=5`
indexes an array of tables). A key that is not listed here is an error, reported with the
closest valid key, except in the tables of components (domains, mappers, critics, the
adversarial loss and its penalty): there every other key is an option of the component the
table names, checked against the signature of the plugin's factory. `docs/components.md`
describes the options of every component that ships with cyclegen, and `cyclegen plugins` lists
each installed component and its options. `{PLACEHOLDER}` stands for a name the recipe
chooses; domains, mappers and critics share one namespace.
"""


@dataclass(frozen=True)
class Section:
    """One table of the schema and the TOML header it is written under."""

    header: str
    model: type[BaseModel]


def sections(model: type[BaseModel] = Recipe, path: tuple[str, ...] = (), array: bool = False) -> list[Section]:
    """Every table of the schema, depth first in field order; the top level has header ''."""
    found = [Section(_header(path, array) if path else "", model)]
    for name, field in model.model_fields.items():
        nested = _nested(field)
        if nested is not None:
            inner, container = nested
            key = field.alias or name
            child = (*path, key, PLACEHOLDER) if container is dict else (*path, key)
            found += sections(inner, child, array=container is list)
    return found


def _header(path: tuple[str, ...], array: bool) -> str:
    dotted = ".".join(path)
    return f"[[{dotted}]]" if array else f"[{dotted}]"


def _nested(field: FieldInfo) -> tuple[type[BaseModel], type | None] | None:
    """The table model a field holds, and whether as a `dict` of tables, a `list` or alone (None)."""
    annotation = _without_none(field.annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (dict, list) and _is_model(args[-1]):
        return args[-1], origin
    if origin is list and (models := [arg for arg in get_args(args[0]) if _is_model(arg)]):
        return models[0], origin  # a list whose items may be tables (or names)
    if _is_model(annotation):
        return annotation, None
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def type_text(annotation: Any) -> str:
    """A TOML-oriented name for a field's type: `integer`, `array of strings`, allowed values."""
    annotation = _without_none(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return ", ".join(f"`{toml_literal(arg)}`" for arg in args)
    if origin in (Union, types.UnionType):
        return " or ".join(type_text(arg) for arg in args if arg is not type(None))
    if origin is list:
        return f"array of {_plural(args[0])}"
    if origin is tuple and args and all(arg == args[0] for arg in args):
        return f"array of {len(args)} {_plural(args[0])}"
    if _is_model(annotation):
        return "table"
    names = {int: "integer", float: "float", str: "string", bool: "boolean"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def toml_literal(value: Any) -> str:
    """A default or allowed value as it is written in a recipe."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(item) for item in value) + "]"
    return repr(value)


def _plural(annotation: Any) -> str:
    if get_origin(annotation) in (Union, types.UnionType):
        return " or ".join(_plural(arg) for arg in get_args(annotation) if arg is not type(None))
    return f"{type_text(annotation)}s"


def constraint_text(field: FieldInfo) -> str:
    """Bounds such as `>= 0` from the field's metadata (pydantic's `Field(ge=0)`)."""
    bounds = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))
    parts = []
    for item in field.metadata:
        found = [f"{symbol} {getattr(item, attr)}" for attr, symbol in bounds if getattr(item, attr, None) is not None]
        parts += found or [str(item)]
    return ", ".join(parts)


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default is None:
        return "unset"
    if _nested(field) is not None and field.default != []:
        return "optional"  # tables: their keys have their own defaults
    return f"`{toml_literal(field.default)}`"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


def render_section(section: Section, headers: dict[type[BaseModel], str]) -> list[str]:
    model = section.model
    title = f"`{section.header}`" if section.header else "Top level"
    lines = [f"## {title}", ""]
    doc = model.__dict__.get("__doc__")
    if doc:
        lines += [inspect.cleandoc(doc), ""]
    lines += [_row("key", "type", "default", "description"), _row("---", "---", "---", "---")]
    for name, field in model.model_fields.items():
        nested = _nested(field)
        if nested is None:
            kind = type_text(field.annotation)
            limits = constraint_text(field)
            kind = f"{kind} ({limits})" if limits else kind
        else:
            inner, container = nested
            table = {dict: "tables", list: "array of tables"}.get(container, "table")
            if container is list and not _is_model(get_args(_without_none(field.annotation))[0]):
                table = type_text(field.annotation)
            kind = f"{table}: `{headers[inner]}`"
        lines.append(_row(f"`{field.alias or name}`", kind, default_text(field), field.description or ""))
    if model.model_config.get("extra") == "allow":
        named_by = next((key for key in ("type", "loss") if key in model.model_fields), "type")
        lines.append(
            _row(
                "*any other key*",
                "per component",
                "",
                f"An option of the component named by `{named_by}`, validated against its plugin's "
                "factory signature (a misspelt option is reported with the closest one). "
                "`cyclegen plugins` lists each component's options.",
            )
        )
    return [*lines, ""]


def render() -> str:
    """The whole reference as markdown."""
    found = sections()
    headers = {section.model: section.header for section in found}
    lines = [INTRO]
    for section in found:
        lines += render_section(section, headers)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
