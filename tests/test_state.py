"""Stateful parts and their composition: `Parts` nests state by name and names what is missing."""

from __future__ import annotations

import pytest

from cyclegen import Stateful
from cyclegen.errors import StateError
from cyclegen.state import Parts


class Value:
    def __init__(self, value: int = 0) -> None:
        self.value = value

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        if "value" not in state:
            raise StateError("no value saved")
        self.value = state["value"]


def test_parts_nest_their_children_by_name() -> None:
    tree = Parts({"a": Value(1), "inner": Parts({"b": Value(2)})})
    assert isinstance(tree, Stateful)
    assert tree.state_dict() == {"a": {"value": 1}, "inner": {"b": {"value": 2}}}
    loaded = Parts({"a": Value(), "inner": Parts({"b": Value()})})
    loaded.load_state_dict({**tree.state_dict(), "step": 5})  # names it does not hold are ignored
    assert loaded["a"].value == 1 and loaded["inner"]["b"].value == 2


def test_a_missing_or_refused_part_is_named_by_its_path() -> None:
    tree = Parts({"inner": Parts({"b": Value()})})
    with pytest.raises(StateError, match=r"^inner\.b: no saved state for this part$"):
        tree.load_state_dict({"inner": {}})
    with pytest.raises(StateError, match=r"^inner\.b: no value saved$"):
        tree.load_state_dict({"inner": {"b": {}}})
