"""Loading plugins: installed entry points, local files or modules named by a recipe."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pluggy

from cyclegen import hookspecs
from cyclegen.errors import PluginError
from cyclegen.registry import Registrar, Registry

#: Comma-separated plugin names that are not loaded (like pytest's `-p no:name`).
BLOCK_ENV = "CYCLEGEN_BLOCK_PLUGINS"
ENTRY_POINT_GROUP = "cyclegen"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    version: str
    source: str


@dataclass
class Plugins:
    """The registry the loaded plugins filled, and what was loaded."""

    registry: Registry
    infos: list[PluginInfo]

    def versions(self) -> dict[str, str]:
        return {info.name: info.version for info in self.infos}


def blocked_names() -> list[str]:
    return [name.strip() for name in os.environ.get(BLOCK_ENV, "").split(",") if name.strip()]


def load_plugins(local: Iterable[str] = ()) -> Plugins:
    """Load every installed plugin plus `local` files or modules, and fill a registry.

    `local` entries ending in `.py` are files (a relative one against the current folder:
    recipes make theirs absolute against their own folder); other entries are importable
    module names. Every one of them runs code: callers decide which to trust.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    for name in blocked_names():
        manager.set_blocked(name)
    infos = {info.name: info for info in _load_entry_points(manager)}
    for spec in local:
        name = _local_name(spec)
        if manager.is_blocked(name) or manager.has_plugin(name):
            continue  # before importing: a blocked plugin's code never runs
        module, source = _import_local(spec)
        if manager.is_registered(module):
            continue  # an installed plugin that the recipe names again
        manager.register(module, name=name)
        infos[name] = PluginInfo(name, getattr(module, "__version__", "local"), source)
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"{exc}; the only hook is cyclegen_register(registry)") from None
    registry = Registry()
    for impl in manager.hook.cyclegen_register.get_hookimpls():
        info = infos[impl.plugin_name]
        impl.function(registry=Registrar(registry, info.name, info.version))
    return Plugins(registry, sorted(infos.values(), key=lambda i: i.name))


def local_plugins(specs: Iterable[str], folders: Iterable[Path]) -> list[str]:
    """The entries of a recipe's `plugins` that are not installed code: every `.py` file, and
    each module found directly in one of `folders` (where the current folder is on sys.path,
    a module shipped beside a recipe imports like an installed one)."""
    roots = {Path(folder).resolve() for folder in folders}
    return [spec for spec in specs if spec.endswith(".py") or _module_roots(spec) & roots]


def _module_roots(spec: str) -> set[Path]:
    """The folders (sys.path entries) that hold the top-level package of module `spec`, found
    without importing anything; none where it is built in or cannot be found."""
    try:
        found = importlib.util.find_spec(spec.partition(".")[0])
    except (ImportError, ValueError):  # importing it fails later, with the reason
        return set()
    if found is None:
        return set()
    if found.submodule_search_locations:  # a package: the parents of its folders
        return {Path(location).resolve().parent for location in found.submodule_search_locations}
    return {Path(found.origin).resolve().parent} if found.has_location and found.origin else set()


def _load_entry_points(manager: pluggy.PluginManager) -> list[PluginInfo]:
    """Register every installed plugin; one that fails to import is named with the fix."""
    loaded = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if manager.is_blocked(entry.name) or manager.has_plugin(entry.name):
            continue
        dist = entry.dist
        try:
            module = entry.load()
        except Exception as exc:  # noqa: BLE001 - any import failure is reported the same way
            raise PluginError(
                f"plugin {entry.name!r} ({entry.value}) failed to import: {exc!r}. Fix or uninstall "
                f"it, or skip it with {BLOCK_ENV}={entry.name}"
            ) from exc
        manager.register(module, name=entry.name)
        version = dist.version if dist is not None else "unknown"
        loaded.append(PluginInfo(entry.name, version, dist.name if dist is not None else entry.value))
    return loaded


def _local_name(spec: str) -> str:
    """The plugin name of a recipe's `plugins` entry: `local:<file stem>`, or the module name."""
    return f"local:{Path(spec).stem}" if spec.endswith(".py") else spec


def _import_local(spec: str) -> tuple[ModuleType, str]:
    """The module of a recipe's `plugins` entry, imported, and where it came from."""
    if spec.endswith(".py"):
        path = Path(spec).resolve()
        if not path.is_file():
            raise PluginError(
                f"plugin file {str(path)!r} not found; paths in a recipe's `plugins` are "
                "relative to the recipe's folder"
            )
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
        module_name = f"cyclegen_local_{path.stem}_{digest}"
        module = sys.modules.get(module_name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[module_name] = module
            try:
                loader_spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[module_name]
                raise PluginError(f"plugin file {path} failed to import: {exc!r}") from exc
        return module, str(path)
    try:
        module = importlib.import_module(spec)
    except ImportError as exc:
        raise PluginError(
            f"plugin module {spec!r} cannot be imported ({exc}); name a .py file or an "
            "importable module in the recipe's `plugins`"
        ) from exc
    return module, spec
