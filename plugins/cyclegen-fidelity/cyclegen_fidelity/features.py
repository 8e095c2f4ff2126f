"""Feature extractors (the FID Inception-v3, a domain's own coordinates) and the cache of
reference features, keyed by the reference data's content and the extractor's identity."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import Tensor

from cyclegen import Domain, FeatureExtractor
from cyclegen_fidelity.inception import FEATURES, FIDInceptionV3, Preprocess, network_input
from cyclegen_fidelity.weights import CACHE_ENV, digest, find_weights, load_network


#: Images per forward pass when the recipe does not say. On the 2-core EPYC, batch 10 is the
#: fastest (1.08x batch 1; 50 is 0.94x, docs/benchmarks.md); a GPU wants pytorch-fid's 50.
CPU_BATCH = 10
DEVICE_BATCH = 50


def pick_device(device: str) -> torch.device:
    """`auto` is the GPU where there is one: the Inception network is 5.7 GFLOPs an image."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_uint8(samples: Tensor) -> Tensor:
    """[-1, 1] floats to the 8-bit pixels a saved PNG would hold, as cyclegen writes images."""
    return ((samples.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class InceptionFeatures(FeatureExtractor):
    """The 2,048 pool features of the FID Inception-v3, for images of 1 or 3 channels.

    Samples are quantised to 8 bits first (FID is defined on image files), grey images are
    repeated to RGB, and each batch is resized to 299 x 299 and scaled as `preprocess` names:
    "torch-fidelity" (also torchmetrics' default FID) or "pytorch-fid". `weights` is the file of
    the published weights; without it, $CYCLEGEN_INCEPTION_WEIGHTS or the cache folders are
    searched (docs/fidelity.md). The file is located when the recipe is checked and read at
    the first use.

    Options:
        weights: The file of the published FID Inception weights; unset, it is found through
            $CYCLEGEN_INCEPTION_WEIGHTS or the cache folders (docs/fidelity.md).
        preprocess: Which tool's resizing and scaling to reproduce: "torch-fidelity" (also
            torchmetrics' default FID) or "pytorch-fid"; the two give slightly different FIDs.
        batch: Images per forward pass (at least 1); unset, 10 on the CPU and 50 on a GPU.
        device: Where the network runs: "auto" takes the GPU when there is one, or name a
            torch device ("cpu", "cuda:1").
    """

    def __init__(
        self,
        weights: str | None = None,
        preprocess: Preprocess = "torch-fidelity",
        batch: int | None = None,
        device: str = "auto",
    ) -> None:
        if batch is not None and batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self.path = find_weights(weights)
        self.preprocess = preprocess
        self.device = pick_device(device)
        self.batch = batch or (CPU_BATCH if self.device.type == "cpu" else DEVICE_BATCH)
        self._network: FIDInceptionV3 | None = None
        self._identity: str | None = None

    def identity(self) -> str:
        if self._identity is None:
            self._identity = f"fid-inception-v3 {digest(self.path)} {self.preprocess}"
        return self._identity

    def applies_to(self, domain: Domain) -> bool:
        return len(domain.shape) == 3 and domain.shape[0] in (1, 3)

    def network(self) -> FIDInceptionV3:
        """The network, channels-last: 1.3x faster on the 2-core EPYC (docs/benchmarks.md)."""
        if self._network is None:
            self._network = load_network(self.path).to(self.device, memory_format=torch.channels_last)
        return self._network

    def __call__(self, samples: Tensor, domain: Domain) -> Tensor:
        if not self.applies_to(domain):
            raise ValueError(
                f"the Inception features need images (1 or 3, H, W), but domain {domain.name!r} has samples of shape "
                f'{tuple(domain.shape)}; use features = "raw" or a registered extractor for this domain'
            )
        network = self.network()
        out = torch.empty(len(samples), FEATURES)
        with torch.inference_mode():
            for start in range(0, len(samples), self.batch):
                pixels = to_uint8(samples[start : start + self.batch]).expand(-1, 3, -1, -1)
                x = network_input(pixels.to(self.device), self.preprocess).contiguous(memory_format=torch.channels_last)
                out[start : start + len(x)] = network(x).float().cpu()
        return out


class RawFeatures(FeatureExtractor):
    """The samples themselves, flattened: for a domain whose own coordinates are meaningful
    (the 2-D toy data), precision/recall there says more than any network's features."""

    def identity(self) -> str:
        return "raw"

    def __call__(self, samples: Tensor, domain: Domain) -> Tensor:
        return samples.flatten(1).float()


def cache_folder(cache: str) -> Path | None:
    """`auto`: $CYCLEGEN_CACHE/features or ~/.cache/cyclegen/features; `off`: no cache; else a folder."""
    if cache == "off":
        return None
    if cache == "auto":
        return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cyclegen") / "features"
    return Path(cache).expanduser()


def features_key(extractor: FeatureExtractor, data: Tensor) -> str:
    """The reference data's content (after the domain's preprocessing) and what extracts the
    features from it: any change in either is a new key, so a stale cache cannot be read."""
    contiguous = data.detach().cpu().contiguous()
    sha = hashlib.sha256(f"{extractor.identity()} {contiguous.dtype} {tuple(contiguous.shape)}".encode())
    sha.update(contiguous.view(torch.uint8).numpy().data if contiguous.numel() else b"")
    return sha.hexdigest()[:32]


def reference_features(extractor: FeatureExtractor, data: Tensor, domain: Domain, folder: Path | None) -> Tensor:
    """`extractor(data)`, read from the cache when computed before. Raw features are cheap and
    never cached. A cache that cannot be read or written only costs the computation."""
    if folder is None or isinstance(extractor, RawFeatures):
        return extractor(data, domain)
    path = folder / f"{features_key(extractor, data)}.safetensors"
    try:
        cached = load(path.read_bytes())["features"]
        if len(cached) == len(data):
            return cached
    except FileNotFoundError:
        pass
    except (OSError, KeyError, SafetensorError) as exc:
        warnings.warn(f"ignoring the unreadable feature cache {path}: {exc}", stacklevel=2)
    features = extractor(data, domain)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(save({"features": features.contiguous()}))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        warnings.warn(f"could not write the feature cache in {folder}: {exc}", stacklevel=2)
    return features
