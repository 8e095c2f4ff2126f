"""A warning when a critic stops telling samples apart, which training would otherwise hide.

A critic whose scores hardly vary over a log window gives every sample, real or generated,
the same score, and so gives the mappers no signal; its loss then sits at a constant (2 ln 2
for the BCE critic). The spread a loss counts as constant is the loss's `constant_below`, in
its own score units. A critic is watched once it has scored above that in this process, so
an initialisation that starts out flat is not mistaken for a critic that stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CriticWatch:
    loss: str
    floor: float | None
    #: Critics seen above the floor, and those now below it (warned once per fall).
    lively: set[str] = field(default_factory=set)
    flat: set[str] = field(default_factory=set)

    def check(self, first: int, last: int, spreads: dict[str, float]) -> list[str]:
        """Messages about critics that fell below the floor, or rose again, over steps `first`-`last`."""
        if self.floor is None:
            return []
        messages = []
        for name, spread in spreads.items():
            if spread >= self.floor:
                if name in self.flat:
                    self.flat.discard(name)
                    messages.append(f"critic {name}'s scores vary again at step {last} (spread {spread:.3g})")
                self.lively.add(name)
            elif name in self.lively and name not in self.flat:
                self.flat.add(name)
                messages.append(
                    f"critic {name}'s scores hardly vary: over steps {first}-{last} their spread is {spread:.3g}, "
                    f"under the {self.loss} loss's {self.floor:g}. It scores every sample, real or generated, "
                    "alike, so it gives the mappers no signal: unless their samples already match the data, "
                    "it has stopped learning (docs/concepts.md, 'A critic that stops')"
                )
        return messages
