"""The recipe schema: a whole experiment in one TOML file, validated before training."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cyclegen.errors import RecipeError, closest


class Strict(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class WithOptions(BaseModel):
    """A component section: its `type` plus options checked by the component's factory."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DomainSpec(WithOptions):
    pass


class MapperSpec(WithOptions):
    source: str = Field(alias="from")
    target: str = Field(alias="to")


class CriticSpec(WithOptions):
    domain: str


class AdversarialSpec(BaseModel):
    """The adversarial loss every critic uses, with the loss's own options."""

    model_config = ConfigDict(extra="allow")

    loss: str = "bce"

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TermSpec(Strict):
    """An adversarial term (a critic judges a path's output) or a reconstruction term."""

    kind: Literal["adversarial", "reconstruction"] | None = None
    path: str
    critic: str | None = None
    loss: str | None = None
    weight: float = 1.0

    @model_validator(mode="after")
    def _infer_kind(self) -> "TermSpec":
        if self.kind is None:
            self.kind = "adversarial" if self.critic is not None else "reconstruction"
        if self.kind == "adversarial" and self.critic is None:
            raise ValueError("an adversarial term needs `critic = \"<critic name>\"`")
        if self.kind == "reconstruction":
            if self.critic is not None:
                raise ValueError("a reconstruction term has no critic; remove `critic` or set kind = \"adversarial\"")
            if self.loss is None:
                raise ValueError("a reconstruction term needs `loss` (for example \"l1\" or \"l2\")")
        if self.kind == "adversarial" and self.loss is not None:
            raise ValueError("an adversarial term's loss is set once in [adversarial] loss = ...; remove `loss` here")
        return self


class ClipSpec(Strict):
    """Gradient clipping: each tensor separately (Keras clipnorm) and/or all together."""

    per_tensor: float | None = Field(default=None, gt=0)
    global_norm: float | None = Field(default=None, gt=0, alias="global")


class OptimSpec(Strict):
    networks: list[str]
    type: Literal["adam", "adamw"] = "adam"
    lr: float = Field(default=2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    clip: ClipSpec = ClipSpec()


class ScheduleSpec(Strict):
    """What one training step does.

    A step is a critic phase (`critic_steps` rounds; in each round every critic is updated
    once on real and fake together, or, with `critic_batches = "single-class"`, once on a
    real batch and once on each fake path's batch in turn) followed by `mapper_steps`
    mapper updates, each on fresh batches.
    """

    critic_steps: int | None = Field(default=None, ge=1)
    mapper_steps: int = Field(default=1, ge=1)
    critic_batches: Literal["joint", "single-class"] = "joint"
    fakes: Literal["train", "eval"] = "train"


class TrainSpec(Strict):
    steps: int = Field(default=1000, ge=0)
    batch_size: int = Field(default=64, ge=1)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    threads: int | None = Field(default=None, ge=1)
    log_every: int = Field(default=100, ge=1)
    sample_every: int = Field(default=1000, ge=0)
    checkpoint_every: int = Field(default=1000, ge=0)
    keep_checkpoints: int = Field(default=3, ge=1)
    sample_count: int = Field(default=64, ge=1)


class EvalSpec(Strict):
    samples: int = Field(default=2500, ge=1)
    metrics: list[str] = []


class Recipe(Strict):
    name: str
    seed: int = 0
    plugins: list[str] = []
    train: TrainSpec = TrainSpec()
    domains: dict[str, DomainSpec]
    mappers: dict[str, MapperSpec] = {}
    critics: dict[str, CriticSpec] = {}
    adversarial: AdversarialSpec = AdversarialSpec()
    terms: list[TermSpec]
    optim: dict[str, OptimSpec] = {}
    schedule: ScheduleSpec = ScheduleSpec()
    eval: EvalSpec = EvalSpec()


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.sub=value` overrides; values are TOML literals, else plain strings."""
    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"--set {item!r}: expected KEY=VALUE, for example --set train.steps=500")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node: Any = data
        parts = key.strip().split(".")
        for depth, part in enumerate(parts[:-1]):
            node = _child(node, part, ".".join(parts[: depth + 1]), item)
        last = parts[-1]
        if isinstance(node, list):
            node[_index(node, last, key, item)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise RecipeError(f"--set {item!r}: {'.'.join(parts[:-1])} is a value, not a table")
    return data


def _child(node: Any, part: str, path: str, item: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, path, item)]
    if not isinstance(node, dict):
        raise RecipeError(f"--set {item!r}: {path} is a value, not a table")
    return node.setdefault(part, {})


def _index(node: list[Any], part: str, path: str, item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise RecipeError(f"--set {item!r}: {path} needs an index from 0 to {len(node) - 1}")
    return int(part)


def read_recipe(path: Path, overrides: list[str] = ()) -> dict[str, Any]:
    """A recipe file's data with `overrides` applied, not yet validated."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} not found")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML: {exc}") from None
    return apply_overrides(data, list(overrides))


def load_recipe(path: Path, overrides: list[str] = ()) -> tuple[Recipe, dict[str, Any]]:
    """Read, override and validate a recipe file. Returns the model and the resolved data."""
    return parse_recipe(read_recipe(path, overrides), str(path))


def parse_recipe(data: dict[str, Any], source: str = "recipe") -> tuple[Recipe, dict[str, Any]]:
    try:
        recipe = Recipe.model_validate(data)
    except pydantic.ValidationError as exc:
        raise RecipeError(f"{source}:\n" + "\n".join(_describe(e) for e in exc.errors())) from None
    return recipe, data


def _describe(error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(Recipe, error["loc"][:-1])
        guess = closest(loc[-1], allowed)
        hint = f"did you mean {guess!r}? " if guess else ""
        return f"  {key}: unknown key; {hint}allowed here: {', '.join(allowed)}"
    if error["type"] == "missing":
        return f"  {key}: required key is missing"
    return f"  {key}: {error['msg']}"


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found by walking `loc` from the top-level schema."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            continue  # a dict key such as a domain's name
        current = _model_in(field.annotation)
    return sorted(
        (f.alias or name) for name, f in getattr(current, "model_fields", {}).items()
    )


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside `X`, `list[X]`, `dict[str, X]` or `X | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
