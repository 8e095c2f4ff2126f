"""cyclegen: cycle-consistent generative models as recipes over one plugin engine."""

from importlib.metadata import PackageNotFoundError, version

from cyclegen.hookspecs import hookimpl
from cyclegen.interfaces import (
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
from cyclegen.registry import Registrar
from cyclegen.state import Stateful

try:
    __version__ = version("cyclegen")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "AdversarialLoss",
    "Critic",
    "Domain",
    "DomainKind",
    "FeatureExtractor",
    "Mapper",
    "Metric",
    "PairMetric",
    "Penalty",
    "ReconstructionLoss",
    "Registrar",
    "Stateful",
    "hookimpl",
    "__version__",
]
