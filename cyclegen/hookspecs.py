"""The plugin hooks. A plugin is any module or object with `@hookimpl` functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from cyclegen.registry import Registrar

PROJECT = "cyclegen"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def cyclegen_register(registry: "Registrar") -> None:
    """Add this plugin's components to `registry`.

    Call `registry.domain(name, factory)`, `registry.mapper(...)`, `registry.critic(...)`,
    `registry.adversarial_loss(...)`, `registry.penalty(...)`, `registry.reconstruction_loss(...)`,
    `registry.metric(...)` or `registry.features(...)`. A factory is a class or function; its
    keyword arguments (with type hints and defaults) are the options a recipe may set, validated
    before training.
    Names must be unique across all installed plugins.
    """
