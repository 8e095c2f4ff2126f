"""What the command line shows: a recipe's graph and schedule, metrics, installed plugins."""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from torch import nn

from cyclegen.experiment import Experiment
from cyclegen.plugins import Plugins
from cyclegen.schedule import length_summary, updates_per_step


def describe(exp: Experiment) -> list[RenderableType]:
    """The graph (domains, mappers, critics with parameter counts), its terms and its schedule."""
    graph, recipe = exp.graph, exp.recipe
    table = Table("", "name", "type", "maps / judges", "shape / params", title=f"recipe {recipe.name!r}")
    for name, domain in graph.domains.items():
        table.add_row("domain", name, recipe.domains[name].type, domain.kind, str(domain.shape))
    for name, mapper in graph.mappers.items():
        source, target = graph.mapper_ends[name]
        table.add_row("mapper", name, recipe.mappers[name].type, f"{source} -> {target}", f"{parameters(mapper):,}")
    for name, critic in graph.critics.items():
        table.add_row("critic", name, recipe.critics[name].type, graph.critic_domains[name], f"{parameters(critic):,}")
    penalty = recipe.adversarial.penalty
    losses = recipe.adversarial.loss + (f", penalty: {penalty.type}" if penalty else "")
    terms = Table("term", "weight", title=f"terms (adversarial loss: {losses})")
    for term in graph.terms:
        terms.add_row(term.label, f"{term.weight:g}")
    s, train = recipe.schedule, recipe.train
    per_step = ", ".join(f"{n} {label}" for label, n in updates_per_step(graph, recipe).items())
    lines = [
        f"schedule: {graph.critic_steps} critic round(s) ({s.critic_batches} batches, fakes in {s.fakes} mode), "
        f"{s.mapper_steps} mapper update(s) per step; {train.steps} steps at batch {train.batch_size}, "
        f"precision {train.precision}, channels_last {'on' if train.channels_last else 'off'}, "
        f"compile {'on' if train.compile else 'off'}",
        f"length: {length_summary(graph, recipe)} (updates per step: {per_step})",
    ]
    if (averaged := averages_line(exp)) is not None:
        lines.append(averaged)
    histories = [f"{name} keeps {spec.history}" for name, spec in recipe.critics.items() if spec.history]
    if histories:
        lines.append(f"sample histories: {', '.join(histories)} past fakes per path")
    for name, spec in recipe.optim.items():
        schedule = spec.lr_schedule
        if schedule.type != "constant":
            start, end = schedule.steps(train.steps)
            lines.append(f"optim.{name}: lr {spec.lr:g} until step {start:,}, then linear decay to "
                         f"{spec.lr * schedule.end_factor:g} at step {end:,}")
    return [table, terms, *(Text(line) for line in lines)]


def start_up_lines(exp: Experiment) -> list[str]:
    """What a run says before its first step: networks, length, and a GPU recipe on a CPU."""
    graph, train = exp.graph, exp.recipe.train
    sizes = ", ".join(f"{name} {parameters(net):,}" for name, net in graph.networks.items())
    lines = [
        f"networks (parameters): {sizes}",
        f"length: {length_summary(graph, exp.recipe)}; a step is {graph.critic_steps} critic round(s), "
        f"then {exp.recipe.schedule.mapper_steps} mapper update(s)",
    ]
    if (averaged := averages_line(exp)) is not None:
        lines.append(averaged)
    if train.expects_gpu and exp.device.type == "cpu":
        lines.append(
            "warning: this recipe is sized for a GPU (train.expects_gpu) and trains on the CPU; its "
            "duration is estimated once the first steps are timed"
        )
    return lines


def averages_line(exp: Experiment) -> str | None:
    """What `[ema]` averages and how fast, or None without it."""
    averages, spec = exp.graph.averages, exp.recipe.ema
    if averages is None or spec is None:
        return None
    warmup = f", warm-up {spec.warmup:g} of the samples seen" if spec.warmup else ""
    return (
        f"ema: averages of {', '.join(averages.names())}, half-life {averages.half_life:,.0f} samples{warmup}; "
        "samples and evaluation use them (--raw-weights: the trained mappers)"
    )


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def metrics_table(metrics: dict[str, dict[str, float]]) -> Table:
    table = Table("evaluated", "metric", "value")
    for section, values in metrics.items():
        for i, (key, value) in enumerate(values.items()):
            table.add_row(section if i == 0 else "", key, f"{value:.4g}")
    return table


def plugins_table(loaded: Plugins) -> Table:
    """Each plugin with its version and every component it registers, with the component's options."""
    names = [(kind, name) for kind, components in loaded.registry.components.items() for name in components]
    table = Table("plugin", "version", "kind", "name", "options")
    for column, width in zip(table.columns[2:4], (max(len(k) for k, _ in names), max(len(n) for _, n in names))):
        column.min_width = width  # an 80-column terminal wraps the options, never a name
    for info in loaded.infos:
        first = True
        for kind, components in loaded.registry.components.items():
            for name, component in sorted(components.items()):
                if component.plugin != info.name:
                    continue
                options = ", ".join(component.options())
                table.add_row(info.name if first else "", info.version if first else "", kind, name, options)
                first = False
        if first:
            table.add_row(info.name, info.version, "", "(nothing registered)", "")
    return table
