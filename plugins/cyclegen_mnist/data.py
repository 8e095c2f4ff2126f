"""Reading MNIST from the usual `mnist.npz` once, checked, into padded uint8 tensors.

The file is the one Keras and most mirrors publish: `x_train` (60000, 28, 28) and `x_test`
(10000, 28, 28) uint8 digits, `y_train` and `y_test` their labels 0-9. Everything is checked
when it is loaded, so a wrong or damaged file is an error naming the file before any training,
not a shape error in the middle of a run.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

#: Side of an MNIST digit, and of the padded digits the domain and the classifier see.
DIGIT = 28
SIZE = 32
PAD = (SIZE - DIGIT) // 2
SPLITS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
WHERE = (
    "get MNIST as mnist.npz (x_train, y_train, x_test, y_test; e.g. the Keras copy, "
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz; README, section Data)"
)
#: What numpy raises on a file that is not a (whole) npz.
UNREADABLE = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


@dataclass(frozen=True)
class Digits:
    """One split: digits zero-padded to SIZE x SIZE, (N, SIZE, SIZE) uint8, and labels (N,) int64."""

    pixels: Tensor
    labels: Tensor


def pad(digits: Tensor) -> Tensor:
    """(..., 28, 28) -> (..., 32, 32) with 2 black pixels on every side (padding, not resizing)."""
    return torch.nn.functional.pad(digits, (PAD, PAD, PAD, PAD))


def load_mnist(source: str | Path, fix: str = "") -> dict[str, Digits]:
    """Both splits of the npz at `source`, checked; errors name the file, `WHERE` and `fix`."""
    path = Path(source).expanduser()
    hint = f"{WHERE}{'; ' + fix if fix else ''}"
    if not path.is_file():
        state = "is a folder, not a file" if path.is_dir() else "not found"
        raise ValueError(f"MNIST source {str(source)!r} ({path.resolve()}) {state}; {hint}")
    arrays, found = read_arrays(path, hint)
    return {split: check_split(path, arrays, split, found, hint) for split in SPLITS}


def read_arrays(path: Path, hint: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """The split arrays the npz at `path` holds (all read, so a torn file fails here), and its keys."""
    unreadable = f"MNIST source {path} is not a readable .npz archive"
    try:
        archive = np.load(path, allow_pickle=False)
    except UNREADABLE as exc:
        raise ValueError(f"{unreadable} ({exc}); {hint}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"MNIST source {path} is a single .npy array, not an .npz archive of splits; {hint}")
    try:
        with archive:
            found = sorted(archive.files)
            return {key: archive[key] for key in (*SPLITS["train"], *SPLITS["test"]) if key in found}, found
    except UNREADABLE as exc:
        raise ValueError(f"{unreadable} (torn or damaged: {exc}); {hint}") from None


def check_split(path: Path, arrays: dict[str, np.ndarray], split: str, found: list[str], hint: str) -> Digits:
    x_key, y_key = SPLITS[split]
    missing = [key for key in (x_key, y_key) if key not in arrays]
    if missing:
        raise ValueError(f"MNIST source {path} lacks {', '.join(missing)} (it holds {', '.join(found) or 'nothing'}); "
                         f"{hint}")
    x, y = arrays[x_key], arrays[y_key]
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (DIGIT, DIGIT) or len(x) < 1:
        raise ValueError(f"MNIST source {path}: {x_key} should be (N, 28, 28) uint8 digits, got {x.shape} {x.dtype}; "
                         f"{hint}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
        raise ValueError(f"MNIST source {path}: {y_key} should be {len(x)} labels 0-9, got {y.shape} {y.dtype}; "
                         f"{hint}")
    return Digits(pad(torch.from_numpy(np.ascontiguousarray(x))), torch.from_numpy(y.astype(np.int64)))
