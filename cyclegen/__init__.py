"""cyclegen: cycle-consistent generative models as recipes over one plugin engine."""

from importlib.metadata import PackageNotFoundError, version

from cyclegen.hookspecs import hookimpl
from cyclegen.interfaces import AdversarialLoss, Critic, Domain, Mapper, Metric, PairMetric, Penalty, ReconstructionLoss

try:
    __version__ = version("cyclegen")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "AdversarialLoss",
    "Critic",
    "Domain",
    "Mapper",
    "Metric",
    "PairMetric",
    "Penalty",
    "ReconstructionLoss",
    "hookimpl",
    "__version__",
]
