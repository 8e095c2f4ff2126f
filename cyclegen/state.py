"""The contract of everything that a checkpoint carries: `state_dict()` and `load_state_dict()`.

Training state is a tree. Each stateful part (networks, an optimiser group, a sample history,
random streams, gradient scalers) returns its own nested dict of tensors and plain values, and
composite parts (`Parts`) nest their children's by name. A checkpoint only stores the tree, so
a new stateful feature implements these two methods and joins a `Parts`; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from cyclegen.errors import StateError

State = dict[str, Any]


@runtime_checkable
class Stateful(Protocol):
    """A part whose state survives a checkpoint and resumes bit for bit."""

    def state_dict(self) -> State: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


class Parts(dict[str, Stateful]):
    """Named stateful parts, stateful in turn: its state holds each part's under its name.

    Loading needs every part's state and ignores names it does not hold, so a composite may
    add plain values (a step count) beside its parts.
    """

    def state_dict(self) -> State:
        return {name: part.state_dict() for name, part in self.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, part in self.items():
            if name not in state:
                raise StateError("no saved state for this part", (name,))
            try:
                part.load_state_dict(state[name])
            except StateError as exc:
                raise exc.within(name) from None
