"""Finding and loading the published FID Inception-v3 weights, never downloading them.

FID numbers are comparable only when computed with the very weights FID was defined with, so
the metric refuses to run without them instead of falling back to anything else. pytorch-fid
and torch-fidelity publish the same TensorFlow 2015-12-05 weights under two file names, in
the key layout `FIDInceptionV3` uses.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from cyclegen_fidelity.inception import FIDInceptionV3

#: An explicit weights file, for every recipe and command.
WEIGHTS_ENV = "CYCLEGEN_INCEPTION_WEIGHTS"
CACHE_ENV = "CYCLEGEN_CACHE"


@dataclass(frozen=True)
class Published:
    file: str
    url: str


PUBLISHED = (
    Published(
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    ),
    Published(
        "weights-inception-2015-12-05-6726825d.pth",
        "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
    ),
)


class WeightsError(ValueError):
    """The FID weights are missing or are not the FID Inception-v3's."""


def weights_folder() -> Path:
    """Where cyclegen looks for the weights: $CYCLEGEN_CACHE/weights or ~/.cache/cyclegen/weights."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cyclegen") / "weights"


def search_paths() -> list[Path]:
    """cyclegen's weights folder, then torch hub's checkpoints folder, where pytorch-fid and
    torch-fidelity keep the file once they have downloaded it."""
    folders = [weights_folder(), Path(torch.hub.get_dir()) / "checkpoints"]
    return [folder / published.file for folder in folders for published in PUBLISHED]


def find_weights(path: str | None = None) -> Path:
    """The weights file: `path` if given, else $CYCLEGEN_INCEPTION_WEIGHTS, else the first of
    `search_paths()` that exists. Raises WeightsError naming the file and where it is published."""
    explicit = path or os.environ.get(WEIGHTS_ENV)
    if explicit:
        found = Path(explicit).expanduser()
        if not found.is_file():
            source = "the metric's weights option" if path else f"${WEIGHTS_ENV}"
            raise WeightsError(f"the FID Inception weights file {str(found)!r} (from {source}) does not exist")
        return found
    for candidate in search_paths():
        if candidate.is_file():
            return candidate
    first = PUBLISHED[0]
    raise WeightsError(
        f"the FID Inception-v3 weights are not installed. Download {first.file} (about 96 MB) from {first.url} "
        f"into {weights_folder()}/, or point ${WEIGHTS_ENV} (or the metric's `weights` option) at the file; "
        f"torch-fidelity's copy ({PUBLISHED[1].file}) works too. cyclegen never downloads them itself, and "
        "computes no FID without them: a number from other weights could not be compared with any other FID "
        "(docs/fidelity.md)"
    )


def digest(path: Path) -> str:
    """The file's SHA-256, so that features (and caches of them) are tied to the exact weights."""
    sha = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def read_state(path: Path) -> dict[str, Tensor]:
    """A state dict from a `.pth` (read without running pickled code) or a `.safetensors` file."""
    try:
        state = (
            load_file(path)
            if path.suffix == ".safetensors"
            else torch.load(path, map_location="cpu", weights_only=True)
        )
    except Exception as exc:  # torch and safetensors raise many kinds on a damaged file
        raise WeightsError(f"cannot read the FID Inception weights {str(path)!r}: {exc}") from None
    if not isinstance(state, dict) or not all(isinstance(value, Tensor) for value in state.values()):
        raise WeightsError(f"{str(path)!r} holds no state dict of tensors, so it is not the FID Inception weights")
    return state


def load_network(path: Path) -> FIDInceptionV3:
    """The network with the weights of `path`, in eval mode, checked key by key and shape by shape.

    Batch norms' `num_batches_tracked` counters are optional: files saved by older PyTorch
    lack them, and evaluation never reads them.
    """
    state = {key: value for key, value in read_state(path).items() if not key.endswith("num_batches_tracked")}
    network = FIDInceptionV3()
    expected = {key: value for key, value in network.state_dict().items() if not key.endswith("num_batches_tracked")}
    missing, unexpected = sorted(expected.keys() - state.keys()), sorted(state.keys() - expected.keys())
    wrong = [key for key in expected.keys() & state.keys() if state[key].shape != expected[key].shape]
    if missing or unexpected or wrong:
        problems = [
            f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})" if missing else "",
            f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})" if unexpected else "",
            f"{len(wrong)} tensors of the wrong shape (e.g. {', '.join(sorted(wrong)[:3])})" if wrong else "",
        ]
        raise WeightsError(f"{str(path)!r} is not the FID Inception-v3 weights: {'; '.join(p for p in problems if p)}")
    network.load_state_dict(state, strict=False)
    return network.eval().requires_grad_(False)
