"""FID, KID, improved precision/recall and density/coverage for cyclegen, on the FID
Inception-v3 (weights from a local file, never downloaded) or on any registered features.

A plugin distribution of its own (cyclegen-fidelity), so that cyclegen installs without
torchmetrics; recipes that name its metrics get an install hint when it is missing.
"""

from __future__ import annotations

from cyclegen import hookimpl
from cyclegen_fidelity.features import InceptionFeatures, RawFeatures
from cyclegen_fidelity.inception import FIDInceptionV3
from cyclegen_fidelity.metrics import FID, KID, DensityCoverage, PrecisionRecall

__all__ = ["FID", "KID", "DensityCoverage", "FIDInceptionV3", "InceptionFeatures", "PrecisionRecall", "RawFeatures"]


@hookimpl
def cyclegen_register(registry) -> None:
    registry.metric("fid", FID)
    registry.metric("kid", KID)
    registry.metric("precision-recall", PrecisionRecall)
    registry.metric("density-coverage", DensityCoverage)
    registry.features("inception", InceptionFeatures)
    registry.features("raw", RawFeatures)
