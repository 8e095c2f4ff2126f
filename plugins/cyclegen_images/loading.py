"""Reading a folder or a .zip of images once, into a uint8 array cached on disk.

Training never decodes an image: the decoded set is kept as one uint8 array, and a cache
file keyed by the source's content and the preprocessing makes the next run start at once.
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import json
import os
import warnings
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
CACHE_VERSION = 1
EXPECTED = "a folder of images (searched recursively) or a .zip of them (JPEG, PNG, WebP, BMP)"


@dataclass(frozen=True)
class Preprocessing:
    size: int
    channels: int


class ImageSource:
    """The image files of a folder (recursively) or a zip archive, in a stable order.

    `limit` keeps only the first files of that order (quick experiments on big sets).
    """

    def __init__(self, path: Path, limit: int | None = None) -> None:
        self.path = path
        if path.is_dir():
            self.archive = None
            self.names = sorted(
                str(p.relative_to(path)) for p in path.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
            )
        elif path.is_file() and zipfile.is_zipfile(path):
            self.archive = zipfile.ZipFile(path)
            self.names = sorted(n for n in self.archive.namelist() if n.lower().endswith(EXTENSIONS))
        elif path.exists():
            raise ValueError(f"image source {str(path)!r} is neither a folder nor a zip archive; expected {EXPECTED}")
        else:
            raise ValueError(f"image source {str(path)!r} not found; expected {EXPECTED}")
        if not self.names:
            raise ValueError(f"image source {str(path)!r} holds no images; expected {EXPECTED}")
        self.names = self.names[:limit]

    def fingerprint(self) -> str:
        """Changes whenever a file is added, removed or modified."""
        if self.archive is not None:
            wanted = set(self.names)
            parts = [(i.filename, i.file_size, i.CRC) for i in self.archive.infolist() if i.filename in wanted]
        else:
            parts = [(n, (s := (self.path / n).stat()).st_size, s.st_mtime_ns) for n in self.names]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def read(self, name: str) -> bytes:
        if self.archive is not None:
            return self.archive.read(name)
        return (self.path / name).read_bytes()


def decode(data: bytes, prep: Preprocessing) -> np.ndarray:
    """Bytes of one image -> (C, size, size) uint8: colour converted, centre-cropped, resized."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        image = image.convert("RGB" if prep.channels == 3 else "L")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != prep.size:
        image = image.resize((prep.size, prep.size), Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def expand_paths(paths: list[Path]) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(label, reader) for each image: files as given, folders and zips expanded in order."""
    for path in paths:
        if path.is_dir() or (path.is_file() and zipfile.is_zipfile(path)):
            source = ImageSource(path)
            for name in source.names:
                yield f"{path}/{name}", functools.partial(source.read, name)
        elif path.is_file():
            yield str(path), path.read_bytes
        else:
            raise ValueError(f"{str(path)!r} not found; give image files, folders or .zip archives")


def read_images(paths: list[Path], prep: Preprocessing, limit: int | None = None) -> np.ndarray:
    """Decode user-given images (the first `limit`) strictly: an unreadable one is an error."""
    arrays = []
    for label, read in itertools.islice(expand_paths(paths), limit):
        try:
            arrays.append(decode(read(), prep))
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(f"cannot read image {label!r}: {exc}") from None
    return np.stack(arrays)


@dataclass
class Decoded:
    pixels: np.ndarray  # (N, C, H, W) uint8
    names: list[str]
    skipped: list[str]


def load_source(
    path: Path, prep: Preprocessing, cache_dir: Path | None, strict: bool, limit: int | None = None
) -> Decoded:
    """All images of `path`, decoded once; unreadable files skipped with a warning (or an error)."""
    source = ImageSource(path, limit)
    key = hashlib.sha256(
        json.dumps([CACHE_VERSION, source.fingerprint(), prep.size, prep.channels]).encode()
    ).hexdigest()[:32]
    if cache_dir is not None and (cached := _read_cache(cache_dir, key)) is not None:
        decoded = cached
    else:
        decoded = _decode_all(source, prep)
        if cache_dir is not None:
            _write_cache(cache_dir, key, decoded)
    if decoded.skipped:
        first = ", ".join(decoded.skipped[:5])
        message = f"{len(decoded.skipped)} unreadable image(s) in {str(path)!r}, e.g. {first}"
        if strict:
            raise ValueError(f"{message}; remove them or set strict = false to skip them")
        warnings.warn(f"skipped {message}", stacklevel=2)
    if len(decoded.names) < 2:
        raise ValueError(f"image source {str(path)!r} has {len(decoded.names)} readable image(s); need at least 2")
    return decoded


def _decode_all(source: ImageSource, prep: Preprocessing) -> Decoded:
    def attempt(item: tuple[str, bytes]) -> np.ndarray | None:
        try:
            return decode(item[1], prep)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
            return None

    items = ((name, source.read(name)) for name in source.names)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:  # Pillow decodes without the GIL
        results = list(pool.map(attempt, items, chunksize=64))
    names = [n for n, r in zip(source.names, results) if r is not None]
    skipped = [n for n, r in zip(source.names, results) if r is None]
    pixels = np.stack([r for r in results if r is not None]) if names else np.zeros((0, prep.channels, prep.size, prep.size), np.uint8)
    return Decoded(pixels, names, skipped)


def _read_cache(cache_dir: Path, key: str) -> Decoded | None:
    array_path, index_path = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    try:
        index = json.loads(index_path.read_text())
        pixels = np.load(array_path)
    except (OSError, ValueError):
        return None
    if len(pixels) != len(index["names"]):
        return None
    return Decoded(pixels, index["names"], index["skipped"])


def _write_cache(cache_dir: Path, key: str, decoded: Decoded) -> None:
    """Best effort: a cache that cannot be written only costs the next run a decode."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_dir / f".{key}.{os.getpid()}.npy"
        np.save(tmp, decoded.pixels)
        os.replace(tmp, cache_dir / f"{key}.npy")
        index_tmp = cache_dir / f".{key}.{os.getpid()}.json"
        index_tmp.write_text(json.dumps({"names": decoded.names, "skipped": decoded.skipped}))
        os.replace(index_tmp, cache_dir / f"{key}.json")
    except OSError as exc:
        warnings.warn(f"could not write the image cache in {cache_dir}: {exc}", stacklevel=2)
