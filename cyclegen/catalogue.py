"""Components of first-party plugins that are installed as their own distributions.

When a recipe names one of them and it is not installed (or is blocked), the error says
which distribution provides it and how to install it, instead of only "unknown name".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Distribution:
    name: str
    plugin: str
    install: str


WASSERSTEIN = Distribution(
    "cyclegen-wasserstein",
    "wasserstein",
    "pip install -e plugins/cyclegen-wasserstein (from the cyclegen source tree)",
)

FIDELITY = Distribution(
    "cyclegen-fidelity",
    "fidelity",
    "pip install -e plugins/cyclegen-fidelity (from the cyclegen source tree)",
)

#: (kind, component name) -> the distribution that registers it.
OPTIONAL_COMPONENTS: dict[tuple[str, str], Distribution] = {
    ("adversarial_loss", "wgan"): WASSERSTEIN,
    ("adversarial_loss", "wgan-gp"): WASSERSTEIN,
    ("penalty", "r1"): WASSERSTEIN,
    ("penalty", "gradient-penalty"): WASSERSTEIN,
    ("metric", "fid"): FIDELITY,
    ("metric", "kid"): FIDELITY,
    ("metric", "precision-recall"): FIDELITY,
    ("metric", "density-coverage"): FIDELITY,
    ("features", "inception"): FIDELITY,
    ("features", "raw"): FIDELITY,
}


def missing_plugin_hint(kind: str, name: str) -> str | None:
    """How to get component `name` of `kind`, when a separately installed plugin provides it."""
    dist = OPTIONAL_COMPONENTS.get((kind, name))
    if dist is None:
        return None
    return (
        f"{kind.replace('_', ' ')} {name!r} is provided by the plugin distribution {dist.name!r}, "
        f"which is not installed or is blocked (CYCLEGEN_BLOCK_PLUGINS={dist.plugin}); install it "
        f"with: {dist.install}"
    )
