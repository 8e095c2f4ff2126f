"""What one training step amounts to: how many updates each optimiser group makes in it.

Papers count a run's length in updates (the AEGAN paper's "300,000 steps" are E+G updates);
a recipe counts steps, each a critic phase and a mapper phase. These counts convert one into
the other, and `cyclegen validate` states both.
"""

from __future__ import annotations

from cyclegen.graph import Graph
from cyclegen.optim import default_optim
from cyclegen.recipe import Recipe


def updates_per_step(graph: Graph, recipe: Recipe) -> dict[str, int]:
    """Optimiser updates in one step, by group, each named by its networks ("E+G").

    Mapper groups update `mapper_steps` times. A critic group updates once a round with joint
    batches, and with single-class batches twice per fake path (a real batch, then the path's
    fakes) of its busiest critic, for `critic_steps` rounds: as the trainer does.
    """
    specs = recipe.optim or default_optim(graph)
    joint = recipe.schedule.critic_batches == "joint"
    counts: dict[str, int] = {}
    for spec in specs.values():
        label = "+".join(sorted(spec.networks))
        if spec.networks[0] in graph.mappers:
            counts[label] = recipe.schedule.mapper_steps
            continue
        paths = [len({term.path for term in graph.adversarial_terms(name)}) for name in spec.networks]
        counts[label] = graph.critic_steps * (1 if joint else 2 * max(paths))
    return counts


def length_summary(graph: Graph, recipe: Recipe) -> str:
    """'75,000 steps = 300,000 E+G updates, 300,000 Dx updates, 300,000 Dz updates'."""
    steps = recipe.train.steps
    counts = updates_per_step(graph, recipe)
    return f"{steps:,} steps = " + ", ".join(f"{steps * n:,} {label} updates" for label, n in counts.items())
