"""cyclegen: cycle-consistent generative models as recipes over one plugin engine.

The public names are imported on first use, so that `cyclegen --help` and `--version` answer
at once instead of waiting seconds for torch to import (far longer on a busy machine).
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from cyclegen.hookspecs import hookimpl

if TYPE_CHECKING:  # what the lazy imports below provide, for type checkers and editors
    from cyclegen.interfaces import (  # noqa: F401
        AdversarialLoss,
        Critic,
        Domain,
        DomainKind,
        FeatureExtractor,
        Mapper,
        Metric,
        PairMetric,
        Penalty,
        ReconstructionLoss,
    )
    from cyclegen.registry import Registrar  # noqa: F401
    from cyclegen.state import Stateful  # noqa: F401
    from cyclegen.trained import load  # noqa: F401

try:
    __version__ = version("cyclegen")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

#: Each lazily imported public name and the module that defines it.
_HOMES = {
    **dict.fromkeys(
        ["AdversarialLoss", "Critic", "Domain", "DomainKind", "FeatureExtractor", "Mapper", "Metric",
         "PairMetric", "Penalty", "ReconstructionLoss"],
        "cyclegen.interfaces",
    ),
    "Registrar": "cyclegen.registry",
    "Stateful": "cyclegen.state",
    "load": "cyclegen.trained",
}

__all__ = [
    "AdversarialLoss", "Critic", "Domain", "DomainKind", "FeatureExtractor", "Mapper", "Metric", "PairMetric",
    "Penalty", "ReconstructionLoss", "Registrar", "Stateful", "__version__", "hookimpl", "load",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'cyclegen' has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
