"""The recipe schema: a whole experiment in one TOML file, validated before training."""

from __future__ import annotations

import copy
import re
import tomllib
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pydantic
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from cyclegen.errors import RecipeError, closest

#: The largest recipe seed: TOML's integers are signed 64-bit (seeds derived from it are reduced
#: to torch's range in `cyclegen.streams`).
MAX_SEED = 2**63 - 1
#: A run name is one plain folder name, so that `runs/<name>` stays inside runs/.
RUN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class Checked(BaseModel):
    """Numbers are finite, and a boolean is not a number: TOML's `true` must not read as 1."""

    model_config = ConfigDict(allow_inf_nan=False, populate_by_name=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields[info.field_name]
        number = _number_word(field.annotation)
        items = value if isinstance(value, (list, tuple)) else [value]
        if number and any(isinstance(item, bool) for item in items):
            raise ValueError(f"expected {number}, not a boolean (true/false)")
        return value


def _number_word(annotation: Any) -> str | None:
    """'an integer' or 'a number' where `annotation` holds ints or floats, else None."""
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a number"
    if get_origin(annotation) in (Union, types.UnionType, tuple):
        words = [_number_word(arg) for arg in get_args(annotation)]
        return next((word for word in words if word), None)
    return None


class Strict(Checked):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class WithOptions(Checked):
    """A component section: its `type` plus options checked by the component's factory."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A registered component name; `cyclegen plugins` lists them.")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DomainSpec(WithOptions):
    """A space of samples: a data set (kind data) or a distribution (kind prior)."""


class MapperSpec(WithOptions):
    """A network from samples of one domain to samples of another."""

    source: str = Field(alias="from", description="The domain it maps from.")
    target: str = Field(alias="to", description="The domain it maps into.")


class CriticSpec(WithOptions):
    """A network that scores samples of one domain, trained against the paths that end there."""

    domain: str = Field(description="The domain whose samples it scores.")
    history: int = Field(
        default=0,
        ge=0,
        description="Past generated samples kept per fake path and mixed into the fakes the critic "
        "sees (CycleGAN: 50); 0 shows it only the current ones.",
    )
    pack: int = Field(
        default=1,
        ge=1,
        description="Samples the critic judges together as one input (PacGAN packing, stacked along "
        "the first axis; PacGAN packs 2-4), so that it sees whether a batch repeats modes; 1 judges "
        "each sample alone. It must divide train.batch_size (per process under torchrun).",
    )


class PenaltySpec(WithOptions):
    """A critic penalty added to any adversarial loss: `{ type = "r1", weight = 10 }`."""


class MetricSpec(WithOptions):
    """A registered metric with options: `{ type = "fid", reference = 5000 }`."""


class AdversarialSpec(Checked):
    """The adversarial loss every critic uses, with the loss's own options, and a penalty."""

    model_config = ConfigDict(extra="allow")

    loss: str = Field(default="bce", description="A registered adversarial loss; `cyclegen plugins` lists them.")
    penalty: PenaltySpec | None = Field(
        default=None, description="A critic penalty added to the loss, with its own `type` and options."
    )

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TermSpec(Strict):
    """An adversarial term (a critic judges a path's output), a reconstruction term (a path
    that returns to its start domain) or an identity term (a mapper given samples of its own
    target domain). Each adds `weight` times its loss to the mappers' objective."""

    kind: Literal["adversarial", "reconstruction", "identity"] | None = Field(
        default=None,
        description="Inferred when unset: adversarial with a `critic`, reconstruction otherwise; "
        "an identity term must say so.",
    )
    path: str = Field(description="A domain, then the mappers applied in order: `\"x -> E -> G\"`.")
    critic: str | None = Field(default=None, description="The critic that judges the path's output (adversarial terms).")
    loss: str | None = Field(
        default=None,
        description="A registered reconstruction loss (`l1`, `l2`, a plugin's) for reconstruction and "
        "identity terms; the adversarial loss is set once, in `[adversarial]`.",
    )
    weight: float = Field(default=1.0, ge=0, description="Multiplies the term's loss for the mappers; critics' losses are not weighted.")

    @model_validator(mode="after")
    def _infer_kind(self) -> "TermSpec":
        if self.kind is None:
            self.kind = "adversarial" if self.critic is not None else "reconstruction"
        if self.kind == "adversarial" and self.critic is None:
            raise ValueError("an adversarial term needs `critic = \"<critic name>\"`")
        if self.kind in ("reconstruction", "identity"):
            if self.critic is not None:
                raise ValueError(f"a {self.kind} term has no critic; remove `critic` or set kind = \"adversarial\"")
            if self.loss is None:
                raise ValueError(f"a {self.kind} term needs `loss` (for example \"l1\" or \"l2\")")
        if self.kind == "adversarial" and self.loss is not None:
            raise ValueError("an adversarial term's loss is set once in [adversarial] loss = ...; remove `loss` here")
        return self


class ClipSpec(Strict):
    """Gradient clipping: each tensor separately (Keras clipnorm) and/or all together."""

    per_tensor: float | None = Field(
        default=None, gt=0, description="Scale each gradient tensor to at most this L2 norm."
    )
    global_norm: float | None = Field(
        default=None, gt=0, alias="global", description="Scale the group's gradients together to at most this total L2 norm."
    )


class LRScheduleSpec(Strict):
    """Learning rate over training, as a factor of `lr` that depends only on the step.

    `linear-decay` keeps `lr` until `decay_start`, then decays it linearly to `end_factor`
    times `lr` (default zero, as CycleGAN trains) at `decay_end` (default: the end of the run),
    and holds it there. A floor keeps a network learning: a critic frozen at zero lets its
    generator run off towards whatever it scores highest. Each position is a step
    (an integer, `1_500`) or a fraction of `train.steps` (a float, `0.5`): a fraction stays
    valid when a run is shortened with `--set train.steps=N`.
    """

    type: Literal["constant", "linear-decay"] = Field(default="constant", description="The shape of the schedule.")
    decay_start: int | float = Field(
        default=0, ge=0, description="Where linear decay begins: a step, or a fraction of `train.steps` (`0.5`)."
    )
    decay_end: int | float | None = Field(
        default=None,
        gt=0,
        description="Where the rate reaches its end: a step, or a fraction of `train.steps`; unset: `train.steps`.",
    )
    end_factor: float = Field(
        default=0.0, ge=0, lt=1, description="The rate at and after `decay_end`, as a factor of `lr`."
    )

    @field_validator("decay_start", "decay_end")
    @classmethod
    def _fraction_of_the_run(cls, value: int | float | None) -> int | float | None:
        if isinstance(value, float) and value > 1:
            raise ValueError(
                f"{value} is a float, so a fraction of train.steps, and must be at most 1; "
                f"write a step as an integer ({int(value)})"
            )
        return value

    def exact_steps(self, total_steps: int) -> tuple[float, float]:
        """`decay_start` and `decay_end` as positions in a run of `total_steps`, before rounding
        (a fraction may fall between steps)."""
        return _exact_position(self.decay_start, total_steps), _exact_position(self.decay_end or total_steps, total_steps)

    def steps(self, total_steps: int) -> tuple[int, int]:
        """`decay_start` and `decay_end` as steps of a run of `total_steps`."""
        start, end = self.exact_steps(total_steps)
        return round(start), round(end)

    def factor(self, step: int, total_steps: int) -> float:
        start, end = self.steps(total_steps)
        if self.type == "constant" or step < start:
            return 1.0
        progress = min(1.0, (step - start) / max(1, end - start))
        return 1.0 - (1.0 - self.end_factor) * progress


def _exact_position(value: int | float, total_steps: int) -> float:
    """A schedule position before rounding: an integer is a step, a float a fraction of the run."""
    return value * total_steps if isinstance(value, float) else value


class OptimSpec(Strict):
    """One optimiser and the networks it updates: only mappers or only critics.

    Every network belongs to exactly one group. Without any `[optim]` table, one Adam
    (the defaults below) trains all mappers and one Adam each critic.
    """

    networks: list[str] = Field(description="The mappers, or the critics, this optimiser updates.")
    type: Literal["adam", "adamw", "rmsprop", "sgd"] = Field(
        default="adam",
        description="Adam, AdamW (decoupled weight decay), RMSprop (as WGAN with weight clipping is "
        "trained) or SGD.",
    )
    lr: float = Field(default=2e-4, gt=0, description="The learning rate (scaled over training by `lr_schedule`).")
    betas: tuple[float, float] = Field(
        default=(0.5, 0.999), description="Adam's and AdamW's moment decay rates, each at least 0 and below 1."
    )
    eps: float = Field(default=1e-8, gt=0, description="The denominator epsilon of Adam, AdamW and RMSprop.")
    alpha: float = Field(default=0.99, gt=0, lt=1, description="RMSprop's smoothing constant for the squared gradients.")
    momentum: float = Field(default=0.0, ge=0, lt=1, description="The momentum of RMSprop and SGD.")
    weight_decay: float = Field(default=0.0, ge=0, description="Weight decay (an L2 term; decoupled for AdamW).")
    clip: ClipSpec = Field(default=ClipSpec(), description="Gradient clipping before each update.")
    lr_schedule: LRScheduleSpec = Field(default=LRScheduleSpec(), description="The learning rate over training.")

    @field_validator("betas")
    @classmethod
    def _betas_below_one(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"each beta must be at least 0 and below 1, got {list(betas)}")
        return betas

    @model_validator(mode="after")
    def _options_of_this_type(self) -> "OptimSpec":
        takes = {"adam": {"betas", "eps"}, "adamw": {"betas", "eps"}, "rmsprop": {"alpha", "eps", "momentum"},
                 "sgd": {"momentum"}}[self.type]
        foreign = sorted({"betas", "eps", "alpha", "momentum"} & self.model_fields_set - takes)
        if foreign:
            raise ValueError(
                f"optimiser type {self.type!r} has no {', '.join(foreign)}; it takes {', '.join(sorted(takes))}"
            )
        return self


class ScheduleSpec(Strict):
    """What one training step does.

    A step is a critic phase (`critic_steps` rounds; in each round every critic is updated
    once on real and fake together, or, with `critic_batches = "single-class"`, once on a
    real batch and once on each fake path's batch in turn) followed by `mapper_steps`
    mapper updates, each on fresh batches.
    """

    critic_steps: int | None = Field(
        default=None,
        ge=1,
        description="Critic rounds per step, each on fresh fakes; unset: what the adversarial loss "
        "prefers (1; 5 for the Wasserstein losses).",
    )
    mapper_steps: int = Field(default=1, ge=1, description="Mapper updates per step, each on fresh batches.")
    critic_batches: Literal["joint", "single-class"] = Field(
        default="joint",
        description="`joint`: one update per round on a real batch and every fake path's batch; "
        "`single-class`: a real batch, then one fake path's batch, in turn, each its own update.",
    )
    fakes: Literal["train", "eval"] = Field(
        default="train",
        description="The mode the mappers run in while making fakes for the critics (`eval`: no "
        "dropout or noise, batch norm with running statistics).",
    )


class BestSpec(Strict):
    """The metric that picks the `best` checkpoint among the evaluations during training."""

    metric: str = Field(description="A metric of the evaluation, as `cyclegen eval` names it (`\"kl\"`).")
    section: str | None = Field(
        default=None,
        description="The evaluated mapper or cycle it belongs to (`\"G: z -> x\"`); needed where several have the metric.",
    )
    direction: Literal["min", "max"] = Field(description="Whether lower (`min`) or higher (`max`) is better.")


class TrainSpec(Strict):
    """How long to train, where, and what the run directory receives along the way."""

    steps: int = Field(
        default=1000,
        ge=0,
        description="Training steps, each a critic phase and a mapper phase (`[schedule]`); a paper's "
        "length in generator updates is steps times `mapper_steps` (`cyclegen validate` prints the "
        "updates of every optimiser group). Raise it and run again into the run directory to train longer.",
    )
    batch_size: int = Field(default=64, ge=1, description="Samples per batch, for every domain.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        default="auto", description="Where the networks run; `auto` takes CUDA, then MPS, then the CPU."
    )
    threads: int | Literal["auto"] = Field(
        default="auto",
        ge=1,
        description="CPU threads for PyTorch. `auto`: one where a step's forward passes take under "
        "0.2 GFLOP (small networks, which extra threads slow down, most on a busy machine: "
        "docs/benchmarks.md), else PyTorch's default of one per core.",
    )
    expects_gpu: bool = Field(
        default=False,
        description="The recipe is sized for a GPU: on a CPU the run warns at start-up, and again "
        "with the estimated duration once its first steps are timed.",
    )
    log_every: int = Field(
        default=100, ge=1, description="Steps between lines of `metrics.jsonl` (mean losses, checked for NaN and inf)."
    )
    sample_every: int = Field(
        default=1000, ge=0, description="Steps between sample pictures (also at step 0); 0: only at the end."
    )
    checkpoint_every: int = Field(
        default=1000, ge=0, description="Steps between checkpoints; 0: only at the end and on Ctrl-C."
    )
    eval_every: int = Field(
        default=0,
        ge=0,
        description="Steps between evaluations during training (also at step 0), each on `eval_samples` samples "
        "and logged to `metrics.jsonl` as an `eval` line; 0: only the final evaluation.",
    )
    eval_samples: int = Field(
        default=500,
        ge=1,
        description="Samples per evaluated mapper in the evaluations during training: few, so they cost little "
        "(the final evaluation uses `eval.samples`).",
    )
    best: BestSpec | None = Field(
        default=None,
        description="Keep `checkpoints/best.safetensors`, the checkpoint of the evaluation during training with "
        "the best value of this metric, beside the newest `keep_checkpoints` (`--checkpoint best` uses it).",
    )
    keep_checkpoints: int = Field(
        default=3,
        ge=1,
        description="How many of the newest checkpoints are kept; while one is written, one more exists "
        "(peak disk use: keep_checkpoints + 1 checkpoint files).",
    )
    sample_count: int = Field(default=64, ge=1, description="Samples in each sample picture.")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32",
        description="The precision networks run in while training: `bf16` and `fp16` run mappers and "
        "critics under autocast (losses and penalties stay float32); `fp16` also scales the losses "
        "(one gradient scaler for the mappers, one per critic group; a step with inf/NaN gradients "
        "is skipped and the scale lowered). Evaluation, samples and commands run in float32.",
    )
    channels_last: bool = Field(
        default=False,
        description="Store the networks' 4-D weights and 4-D input batches channels-last (NHWC), "
        "which convolutions run faster in on recent GPUs, mostly with bf16/fp16; checkpoints are "
        "the same either way.",
    )
    compile: bool = Field(
        default=False,
        description="Compile every mapper and critic with `torch.compile` (on its first call, so the "
        "first steps are slow); checkpoints are the same either way. Gradient penalties (`wgan-gp`, "
        "`r1`) need a double backward, which compiled code lacks, so they run the critic eagerly; "
        "samples and evaluation run eagerly too.",
    )
    tensorboard: bool = Field(
        default=False,
        description="Also write TensorBoard event files into `<run dir>/tensorboard/` (losses, learning "
        "rates, critic spreads, steps/s, sample pictures, the final evaluation) for `tensorboard --logdir "
        'runs`; `metrics.jsonl` is written either way. Needs `pip install "cyclegen[tensorboard]"`.',
    )


class EMASpec(Strict):
    """Exponential moving averages of mappers' weights, which samples, evaluation and every
    command on a trained run use (`--raw-weights` for the trained ones).

    The half-life counts training samples, as StyleGAN's does, so it means the same at any
    batch size; `decay` gives it per update instead. During `warmup` the half-life is at most
    that fraction of the samples trained on so far, so early averages forget the initialisation.
    """

    mappers: list[str] = Field(min_length=1, description="The mappers to average, by name (`[\"G\"]`).")
    half_life: int | None = Field(
        default=None, gt=0, description="Samples after which an update's weight in the average has halved (10_000)."
    )
    decay: float | None = Field(
        default=None, gt=0, lt=1, description="Instead of `half_life`: the share of the average kept at each update (0.999)."
    )
    warmup: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="The half-life is at most this fraction of the samples trained on so far (StyleGAN's ramp; 0: none).",
    )

    @model_validator(mode="after")
    def _one_speed(self) -> "EMASpec":
        if (self.half_life is None) == (self.decay is None):
            raise ValueError("give exactly one of half_life (in samples, 10_000) and decay (per update, 0.999)")
        return self


class EvalSpec(Strict):
    """Evaluation at the end of training and by `cyclegen eval`."""

    samples: int = Field(
        default=2500, ge=1, description="Samples (or held-out true pairs) per evaluated mapper; cycles use at most 1024."
    )
    metrics: list[str | MetricSpec] = Field(
        default=[],
        description="Registered metrics, besides those the target domains offer, applied to the outputs of "
        'every mapper into a domain they apply to: a name (`"kid"`) or a table with its `type` and options '
        '(`{ type = "fid", reference = 5000 }`).',
    )

    def named_metrics(self) -> list[tuple[str, dict[str, Any]]]:
        """Each of `metrics` as its registered name and options (none for a bare name)."""
        return [(spec, {}) if isinstance(spec, str) else (spec.type, spec.options) for spec in self.metrics]


class Recipe(Strict):
    """A whole experiment: the graph (domains, mappers, critics, terms) and how to train it."""

    name: str = Field(
        description="The run's name; runs go to `runs/<name>` unless `--out` says otherwise. Letters, "
        "digits, `.`, `_` and `-`, not starting with `.`: one folder name, never a path."
    )
    seed: int = Field(
        default=0,
        ge=0,
        le=MAX_SEED,
        description="Seeds the networks' initialisation and every random stream (each domain's own); "
        "from 0 to 2**63 - 1.",
    )
    plugins: list[str] = Field(
        default=[],
        description="Plugins to load besides the installed ones: `.py` files (relative to the recipe's "
        "folder) or importable module names. Each is code that runs when the recipe is loaded; "
        "commands on a run directory run its local plugins only with `--trust-plugins`.",
    )
    train: TrainSpec = Field(default=TrainSpec(), description="How long and where to train.")
    domains: dict[str, DomainSpec] = Field(description="The spaces of samples, by name.")
    mappers: dict[str, MapperSpec] = Field(default={}, description="Networks from one domain to another, by name.")
    critics: dict[str, CriticSpec] = Field(default={}, description="Networks that score one domain's samples, by name.")
    adversarial: AdversarialSpec = Field(
        default=AdversarialSpec(), description="The adversarial loss all critics use, and a penalty."
    )
    terms: list[TermSpec] = Field(description="The losses that train the networks.")
    optim: dict[str, OptimSpec] = Field(default={}, description="Optimiser groups, by name.")
    schedule: ScheduleSpec = Field(default=ScheduleSpec(), description="What one training step does.")
    ema: EMASpec | None = Field(
        default=None, description="Moving averages of mappers' weights, used for samples, evaluation and commands."
    )
    eval: EvalSpec = Field(default=EvalSpec(), description="Evaluation after training.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not RUN_NAME.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a plain run name: use letters, digits, '.', '_' and '-', not starting "
                "with '.'. The run directory is runs/<name>; pass --out to train somewhere else"
            )
        return name

    @model_validator(mode="after")
    def _best_needs_evaluations(self) -> "Recipe":
        if self.train.best is not None and not self.train.eval_every:
            raise ValueError("train.best picks among the evaluations during training: set train.eval_every too")
        return self

    @model_validator(mode="after")
    def _packs_divide_batches(self) -> "Recipe":
        for name, spec in self.critics.items():
            if self.train.batch_size % spec.pack:
                raise ValueError(
                    f"critics.{name}.pack = {spec.pack} must divide train.batch_size ({self.train.batch_size}): "
                    f"each of its inputs packs {spec.pack} samples; use a batch size that is a multiple of it"
                )
        return self

    @model_validator(mode="after")
    def _check_lr_schedules(self) -> "Recipe":
        for name, spec in self.optim.items():
            schedule = spec.lr_schedule
            # Compared before rounding: fractions in order stay valid on a run too short to give
            # them separate steps (0.75 and the end of a 2-step run), where the decay is one drop.
            start, end = schedule.exact_steps(self.train.steps)
            if schedule.type == "linear-decay" and start >= end:
                raise ValueError(
                    f"optim.{name}.lr_schedule: decay_start (step {start:g}) must come before decay_end "
                    f"(step {end:g}); lower decay_start or raise decay_end / train.steps, or give both as "
                    "fractions of the run (decay_start = 0.5)"
                )
        return self


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
    message = error["msg"].removeprefix("Value error, ")
    return f"  {message}" if not loc else f"  {key}: {message}"


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
