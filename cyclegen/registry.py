"""Components by kind and name, with option validation built from factory signatures."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import pydantic

from cyclegen.catalogue import missing_plugin_hint
from cyclegen.errors import PluginError, RecipeError, closest, unknown_name_message

Kind = Literal[
    "domain", "mapper", "critic", "adversarial_loss", "penalty", "reconstruction_loss", "metric", "features"
]
KINDS: tuple[Kind, ...] = get_args(Kind)

#: Arguments the engine passes itself, per kind; everything else is a recipe option.
CONTEXT_ARGS: dict[Kind, tuple[str, ...]] = {
    "domain": ("name",),
    "mapper": ("source", "target"),
    "critic": ("domain",),
    "adversarial_loss": (),
    "penalty": (),
    "reconstruction_loss": (),
    "metric": (),
    "features": (),
}
#: The argument through which a factory of any kind that asks for it builds the components it
#: uses (a metric its feature extractor): a `Components`.
COMPONENTS_ARG = "components"


@dataclass(frozen=True)
class Component:
    kind: Kind
    name: str
    factory: Callable[..., Any]
    plugin: str
    version: str

    def options(self) -> dict[str, inspect.Parameter]:
        """The recipe options this component takes (its factory's keyword arguments)."""
        params = inspect.signature(self.factory).parameters
        skip = set(CONTEXT_ARGS[self.kind]) | {"self", COMPONENTS_ARG}
        return {
            name: p
            for name, p in params.items()
            if name not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }


def _type_hints(factory: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations (plugins may use `from __future__ import annotations`)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target, include_extras=True)
    except (NameError, TypeError):
        return {}


def _options_model(component: Component) -> type[pydantic.BaseModel]:
    hints = _type_hints(component.factory)
    fields: dict[str, Any] = {}
    for name, param in component.options().items():
        annotation = hints.get(name, Any)
        default = param.default if param.default is not inspect.Parameter.empty else ...
        fields[name] = (annotation, default)
    config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return pydantic.create_model(f"{component.name}-options", __config__=config, **fields)


@dataclass
class Registry:
    """Every installed component, looked up by kind and name."""

    components: dict[Kind, dict[str, Component]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )

    def add(self, component: Component) -> None:
        existing = self.components[component.kind].get(component.name)
        if existing is not None:
            raise PluginError(
                f"{component.kind} {component.name!r} is registered by both plugin "
                f"{existing.plugin!r} and plugin {component.plugin!r}; block one of them with "
                f"CYCLEGEN_BLOCK_PLUGINS={component.plugin}"
            )
        self.components[component.kind][component.name] = component

    def names(self, kind: Kind) -> list[str]:
        return sorted(self.components[kind])

    def get(self, kind: Kind, name: str, where: str) -> Component:
        try:
            return self.components[kind][name]
        except KeyError:
            label = kind.replace("_", " ")
            message = missing_plugin_hint(kind, name) or unknown_name_message(label, name, self.names(kind))
            raise RecipeError(f"{where}: {message}") from None

    def build(
        self, kind: Kind, type_name: str, where: str, options: Mapping[str, Any], /, **context: Any
    ) -> Any:
        """Validate `options` against the factory's signature, then call it with `context`."""
        component = self.get(kind, type_name, where)
        model = _options_model(component)
        try:
            validated = model.model_validate(dict(options))
        except pydantic.ValidationError as exc:
            raise RecipeError(_option_errors(exc, where, component)) from None
        values = {key: getattr(validated, key) for key in type(validated).model_fields}
        if COMPONENTS_ARG in inspect.signature(component.factory).parameters:
            context[COMPONENTS_ARG] = Components(self, where)
        try:
            return component.factory(**context, **values)
        except (ValueError, TypeError) as exc:
            raise RecipeError(f"{where} ({kind} {type_name!r}): {exc}") from exc


@dataclass(frozen=True)
class Components:
    """What a factory that composes other components receives as `components`: it builds them
    by a recipe value (a name, or a table with `type` and options), and their errors point at
    the recipe key they were named under."""

    registry: Registry
    where: str

    def build(self, kind: Kind, spec: str | Mapping[str, Any], key: str) -> Any:
        where = f"{self.where}.{key}"
        if isinstance(spec, str):
            return self.registry.build(kind, spec, where, {})
        options = dict(spec)
        if not isinstance(name := options.pop("type", None), str):
            raise RecipeError(
                f"{where}: a table needs a `type`, the name of a registered {kind.replace('_', ' ')} component "
                "(`cyclegen plugins` lists them)"
            )
        return self.registry.build(kind, name, where, options)


def _option_errors(exc: pydantic.ValidationError, where: str, component: Component) -> str:
    allowed = list(component.options())
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            guess = closest(str(error["loc"][0]), allowed)
            hint = f"did you mean {guess!r}? " if guess else ""
            lines.append(
                f"{where}.{key}: {component.kind.replace('_', ' ')} {component.name!r} has no "
                f"option {key!r}; {hint}options: {', '.join(allowed) or '(none)'}"
            )
        elif error["type"] == "missing":
            lines.append(f"{where}.{key}: required option of {component.name!r} is missing")
        else:
            lines.append(f"{where}.{key}: {error['msg']} (got {error.get('input')!r})")
    return "\n".join(lines)


@dataclass
class Registrar:
    """What a plugin's `cyclegen_register` hook receives: adds components under its name."""

    registry: Registry
    plugin: str
    version: str

    def _add(self, kind: Kind, name: str, factory: Callable[..., Any]) -> None:
        self.registry.add(Component(kind, name, factory, self.plugin, self.version))

    def domain(self, name: str, factory: Callable[..., Any]) -> None:
        self._add("domain", name, factory)

    def mapper(self, name: str, factory: Callable[..., Any]) -> None:
        self._add("mapper", name, factory)

    def critic(self, name: str, factory: Callable[..., Any]) -> None:
        self._add("critic", name, factory)

    def adversarial_loss(self, name: str, factory: Callable[..., Any]) -> None:
        self._add("adversarial_loss", name, factory)

    def penalty(self, name: str, factory: Callable[..., Any]) -> None:
        self._add("penalty", name, factory)

    def reconstruction_loss(self, name: str, factory: Callable[..., Any]) -> None:
        self._add("reconstruction_loss", name, factory)

    def metric(self, name: str, factory: Callable[..., Any]) -> None:
        self._add("metric", name, factory)

    def features(self, name: str, factory: Callable[..., Any]) -> None:
        self._add("features", name, factory)
