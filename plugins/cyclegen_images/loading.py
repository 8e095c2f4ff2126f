"""Reading a folder or a .zip of images once, into a uint8 array cached on disk.

Training never decodes an image: the decoded set is kept as one C-contiguous uint8 array,
and a cache file keyed by the source's content and the preprocessing makes the next run
start at once. A file is unreadable (skipped with a warning, or an error for files a user
names) when Pillow cannot decode it, when it is over MAX_FILE_BYTES, when Pillow suspects a
decompression bomb (Image.MAX_IMAGE_PIXELS), when it is animated, or when its shape cannot
be centre-cropped sensibly (see `check_shape`).
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import json
import os
import threading
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from cyclegen.progress import note, task

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
CACHE_VERSION = 2
EXPECTED = "a folder of images (searched recursively) or a .zip of them (JPEG, PNG, WebP, BMP, GIF, TIFF)"
#: The most bytes one image file may hold (decompressed, for a zip member): a zip bomb is refused unread.
MAX_FILE_BYTES = 64 * 2**20
#: A picture's longer side may be at most this many times its shorter one: beyond it the centre crop loses most of it.
MAX_ASPECT = 4
#: The shortest side a picture may have, in pixels.
MIN_SIDE = 2
#: Files handed to the decoding threads at once: bounds the decoded results waiting to be collected.
CHUNK = 256
#: What reading or decoding a broken, refused or truncated file raises.
UNREADABLE = (
    OSError,  # Pillow's UnidentifiedImageError and truncated files among them
    ValueError,  # the checks here, and Pillow's
    EOFError,
    SyntaxError,  # some of Pillow's format plugins on malformed data
    zipfile.BadZipFile,  # a zip member whose data fails its CRC
    zlib.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,  # raised as an error under `bombs_are_errors`
)


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
        self._lock = threading.Lock()  # one zip file handle, shared by the decoding threads
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
        """The file's bytes, at most MAX_FILE_BYTES of them; safe to call from several threads."""
        if self.archive is None:
            return read_file(self.path / name)
        with self._lock:
            info = self.archive.getinfo(name)
            check_file_size(info.file_size)
            with self.archive.open(info) as member:
                return read_bounded(member)


def read_file(path: Path) -> bytes:
    """A file's bytes, refusing one over MAX_FILE_BYTES before reading it."""
    check_file_size(path.stat().st_size)
    with path.open("rb") as stream:
        return read_bounded(stream)


def read_bounded(stream: BinaryIO) -> bytes:
    """All of `stream`, but never more than MAX_FILE_BYTES: a size that lied cannot exhaust memory."""
    data = stream.read(MAX_FILE_BYTES + 1)
    check_file_size(len(data))
    return data


def check_file_size(size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise ValueError(
            f"it holds {size:,} bytes, over the {MAX_FILE_BYTES / 2**20:g} MiB limit per image file; "
            "shrink or re-encode it, or raise cyclegen_images.loading.MAX_FILE_BYTES"
        )


@contextmanager
def bombs_are_errors() -> Iterator[None]:
    """Make Pillow's DecompressionBombWarning an error, so a suspected bomb counts as unreadable.

    Entered once around a whole load, not in `decode`: `warnings.catch_warnings` swaps the
    process-wide filters and is not thread-safe, while the decoding threads all see them.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def decode(data: bytes, prep: Preprocessing) -> np.ndarray:
    """Bytes of one image -> C-contiguous (C, size, size) uint8: colour converted, centre-cropped, resized.

    C-contiguous because the cache gives that layout back, and torch computes convolutions
    on another layout in a different order: a resumed run would not be bit-exact.
    """
    with Image.open(io.BytesIO(data)) as image:
        check_shape(image)
        image.load()
        image = to_8_bit(image).convert("RGB" if prep.channels == 3 else "L")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    if side != prep.size:
        image = image.resize((prep.size, prep.size), Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.uint8)
    return np.ascontiguousarray(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))


def check_shape(image: Image.Image) -> None:
    """Refuse what one centre-cropped square cannot stand for: animations, slivers, specks.

    An MPO (a camera JPEG carrying preview pictures) is read as its primary picture.
    """
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format != "MPO":
        raise ValueError(f"animated image ({frames} frames); give single pictures")
    width, height = image.size
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ValueError(
            f"aspect ratio {width}:{height} is too extreme to centre-crop (at most {MAX_ASPECT}:1); crop it first"
        )
    if min(width, height) < MIN_SIDE:
        raise ValueError(f"image is {width}x{height} pixels; need at least {MIN_SIDE} on each side")


def to_8_bit(image: Image.Image) -> Image.Image:
    """High-bit-depth greyscale -> "L", scaled: Pillow's own conversion clips it to white instead.

    "I;16*" (16-bit PNG, TIFF) and "I" (32-bit integers, what Pillow opens some 16-bit files as)
    are read as 16-bit levels 0..65535: clipped to that range, divided by 257 and rounded.
    "F" (float TIFF) is read as 0..1, the convention of float images, clipped and times 255.
    Other modes are returned as they are, for Pillow's `convert`.
    """
    if image.mode.startswith("I;16") or image.mode == "I":
        levels = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
        return Image.fromarray(((levels + 128) // 257).astype(np.uint8))
    if image.mode == "F":
        levels = np.clip(np.nan_to_num(np.asarray(image)), 0.0, 1.0)
        return Image.fromarray(np.rint(levels * 255).astype(np.uint8))
    return image


def expand_paths(paths: list[Path]) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(label, reader) for each image: files as given, folders and zips expanded in order."""
    for path in paths:
        if path.is_dir() or (path.is_file() and zipfile.is_zipfile(path)):
            source = ImageSource(path)
            for name in source.names:
                yield f"{path}/{name}", functools.partial(source.read, name)
        elif path.is_file():
            yield str(path), functools.partial(read_file, path)
        else:
            raise ValueError(f"{str(path)!r} not found; give image files, folders or .zip archives")


def read_images(paths: list[Path], prep: Preprocessing, limit: int | None = None) -> np.ndarray:
    """Decode user-given images (the first `limit`) strictly: an unreadable one is an error."""
    arrays = []
    with bombs_are_errors():
        for label, read in itertools.islice(expand_paths(paths), limit):
            try:
                arrays.append(decode(read(), prep))
            except UNREADABLE as exc:
                raise ValueError(f"cannot read image {label!r}: {reason(exc)}") from None
    return np.stack(arrays)  # of C-contiguous images: C-contiguous


def reason(exc: BaseException) -> str:
    """Why a file is unreadable, in words (Pillow's own message names an in-memory buffer)."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image Pillow can identify"
    return str(exc) or type(exc).__name__


@dataclass
class Decoded:
    pixels: np.ndarray  # (N, C, H, W) uint8, C-contiguous
    names: list[str]
    skipped: list[str]
    reasons: dict[str, str]  # skipped file -> why it is unreadable


def load_source(
    path: Path,
    prep: Preprocessing,
    cache_dir: Path | None,
    strict: bool,
    limit: int | None = None,
    label: str = "images",
) -> Decoded:
    """All images of `path`, decoded once; unreadable files skipped with a warning (or an error).

    Says where the images came from (`label` names them, e.g. the domain): a decode of a large
    set takes minutes, and a user should see it is happening, and where the cache went.
    """
    source = ImageSource(path, limit)
    key = hashlib.sha256(
        json.dumps([CACHE_VERSION, source.fingerprint(), prep.size, prep.channels]).encode()
    ).hexdigest()[:32]
    shape = f"{prep.size}x{prep.size}"
    if cache_dir is not None and (cached := _read_cache(cache_dir, key)) is not None:
        decoded = cached
        note(f"{label}: {len(decoded.names):,} {shape} images of {path.resolve()} from the cache {cache_dir / key}.npy")
    else:
        with task(f"{label}: decoding {path.resolve()} to {shape}", len(source.names)) as advance:
            decoded = _decode_all(source, prep, advance)
        if cache_dir is not None:
            _write_cache(cache_dir, key, decoded)
            note(f"{label}: cached the decoded set in {cache_dir / key}.npy; the next run starts at once")
    if decoded.skipped:
        first = ", ".join(decoded.skipped[:5])
        why = "; ".join(f"{name}: {decoded.reasons[name]}" for name in decoded.skipped[:3])
        message = f"{len(decoded.skipped)} unreadable image(s) in {str(path)!r}, e.g. {first} ({why})"
        if strict:
            raise ValueError(f"{message}; remove them or set strict = false to skip them")
        warnings.warn(f"skipped {message}", stacklevel=2)
    if len(decoded.names) < 2:
        raise ValueError(f"image source {str(path)!r} has {len(decoded.names)} readable image(s); need at least 2")
    return decoded


def _decode_all(source: ImageSource, prep: Preprocessing, advance: Callable[[int], None]) -> Decoded:
    """Read and decode every file in threads, CHUNK files at a time, into one preallocated array.

    Each thread reads its own file, so the bytes in memory at once are a file per thread,
    however slow decoding is; the output is allocated once, C-contiguous, and filled in order.
    """

    def attempt(name: str) -> np.ndarray | str:
        try:
            return decode(source.read(name), prep)
        except UNREADABLE as exc:
            return reason(exc)

    pixels = np.empty((len(source.names), prep.channels, prep.size, prep.size), np.uint8)
    names: list[str] = []
    reasons: dict[str, str] = {}
    workers = os.cpu_count() or 1  # Pillow decodes without the GIL
    with bombs_are_errors(), ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(source.names), CHUNK):
            chunk = source.names[start : start + CHUNK]
            for name, result in zip(chunk, pool.map(attempt, chunk)):
                if isinstance(result, str):
                    reasons[name] = result
                else:
                    pixels[len(names)] = result
                    names.append(name)
            advance(len(chunk))
    return Decoded(pixels[: len(names)], names, list(reasons), reasons)


def _read_cache(cache_dir: Path, key: str) -> Decoded | None:
    array_path, index_path = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    try:
        index = json.loads(index_path.read_text())
        pixels = np.load(array_path)
        decoded = Decoded(pixels, index["names"], index["skipped"], index["reasons"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return decoded if len(decoded.pixels) == len(decoded.names) else None


def _write_cache(cache_dir: Path, key: str, decoded: Decoded) -> None:
    """Best effort: a cache that cannot be written only costs the next run a decode. A failed
    write (a full disk) leaves no partial file behind."""
    tmp = cache_dir / f".{key}.{os.getpid()}.npy"
    index_tmp = cache_dir / f".{key}.{os.getpid()}.json"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(tmp, decoded.pixels)
        os.replace(tmp, cache_dir / f"{key}.npy")
        index = {"names": decoded.names, "skipped": decoded.skipped, "reasons": decoded.reasons}
        index_tmp.write_text(json.dumps(index))
        os.replace(index_tmp, cache_dir / f"{key}.json")
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        index_tmp.unlink(missing_ok=True)
        warnings.warn(f"could not write the image cache in {cache_dir}: {exc}", stacklevel=2)
