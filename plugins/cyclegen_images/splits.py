"""Which images each split holds: a seeded held-out set, and disjoint parts of the rest.

Both depend only on the image names and the options, so domains that read one source with
the same options hold the same held-out images, and parts of it never share a training image.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor


def check_part(part: int, parts: int) -> None:
    """Fail before any image is read when `part` cannot name one of `parts`."""
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}; use parts = 1 to train on every training image")
    if not 0 <= part < parts:
        raise ValueError(
            f"part must be between 0 and {parts - 1} (parts = {parts}), got {part}; "
            f"set part to 0..{parts - 1} or raise parts"
        )


def split(names: list[str], test_fraction: float, seed: int, parts: int = 1, part: int = 0) -> dict[str, Tensor]:
    """Indices of `names` for "test" (a seeded shuffle's first `test_fraction`) and "train".

    "train" keeps only the training images whose name hashes to `part` modulo `parts`.
    The hash is BLAKE2b of the name, stable across processes and machines (Python's
    hash() of a str is salted per process); assignment by name, not position, keeps an
    image in its part when `limit` or the source's other files change.
    """
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed))
    n_test = min(max(1, round(len(order) * test_fraction)), len(order) - 1)
    test, train = order[:n_test], order[n_test:]
    if parts > 1:
        train = train[torch.tensor([name_part(names[i], parts) == part for i in train.tolist()], dtype=torch.bool)]
        if len(train) == 0:
            raise ValueError(
                f"part {part} of {parts} holds none of the {len(order) - n_test} training images; "
                "use fewer parts or more images"
            )
    return {"test": test, "train": train}


def name_part(name: str, parts: int) -> int:
    """The part (0..parts - 1) an image belongs to, from a stable hash of its name."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % parts
