"""Resolve photo references (paths, data URLs) to checked local files, and load their pixels.

Graph state only ever holds the resulting `Photo` (path + sha256); pixels are loaded on demand and
cached per process by content hash. Photos sent as bytes (uploads, data URLs) go to a
content-addressed store bounded in size. A server calls `confine` once: from then on this process
reads only photos in its store or the folder its operator named, and every other path gets the
same refusal whether or not it exists. http(s) URLs are fetched only when a caller asks for it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import tempfile
import urllib.request
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ipl_graph.errors import PhotoError
from ipl_graph.policies import Limits
from ipl_graph.schemas import Photo

EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}  # every reader's
READABLE = "JPEG, PNG, WebP, HEIC, GIF or BMP"
NOT_SERVED = "not an uploaded photo: upload it (POST /ipl/photos) or send it as a data URL"
WHITE = (255, 255, 255)

_store: Path | None = None  # set by `confine`: the server's own store
_roots: tuple[Path, ...] | None = None  # set by `confine`: the only folders photos are read from


def confine(store: Path, *folders: Path) -> None:
    """From now on store photos in `store` and read photos only from it and `folders` (a server)."""
    global _store, _roots
    store.mkdir(parents=True, exist_ok=True)
    _store = store.resolve()
    _roots = (_store, *(f.resolve() for f in folders))


def cache_dir() -> Path:
    if _store is not None:
        return _store
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "ipl" / "photos"


@lru_cache(maxsize=1)
def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF (iPhone photos); done once, on first use, not at import."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


def store_bytes(data: bytes, limits: Limits, label: str = "upload", folder: Path | None = None) -> Path:
    """Check `data` is an acceptable image and store it content-addressed in `folder` (default: the
    store); returns its path. A refused image leaves no file behind; past the store's bound
    (`limits.photo_store_bytes`) the least recently stored photos go."""
    if len(data) > limits.max_photo_bytes:
        raise PhotoError(f"{label}: {len(data) / 1e6:.1f} MB is over the {limits.max_photo_bytes / 1e6:.0f} MB limit")
    digest = hashlib.sha256(data).hexdigest()
    folder = folder or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")  # unique: concurrent uploads
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        fmt = _check(tmp, limits, label)[2]
        final = folder / f"{digest}{EXTENSIONS.get(fmt, '.jpg')}"
        if fmt not in EXTENSIONS:  # HEIC: OpenCV (NudeNet reads paths with it) cannot; keep a JPEG
            _to_jpeg(tmp, tmp)
        tmp.replace(final)
    finally:
        tmp.unlink(missing_ok=True)
    prune(folder, limits.photo_store_bytes, keep=final)
    return final


def prune(folder: Path, bound: int, keep: Path) -> None:
    """Remove the least recently stored photos until the folder holds at most `bound` bytes."""
    files = []
    for path in folder.iterdir():
        if path.name.startswith("."):  # an upload still being checked
            continue
        with contextlib.suppress(FileNotFoundError):  # another request may prune at the same time
            stat = path.stat()
            files.append((stat.st_mtime_ns, stat.st_size, path))
    total = sum(size for _, size, _ in files)
    for _, size, path in sorted(files):
        if total <= bound:
            break
        if path != keep:
            path.unlink(missing_ok=True)
            total -= size


def _to_jpeg(src: Path, dst: Path) -> None:
    with Image.open(src) as img:
        rgb = to_rgb(ImageOps.exif_transpose(img))
    rgb.save(dst, "JPEG", quality=95)


def _decode_data_url(ref: str, limits: Limits) -> Path:
    header, _, payload = ref.partition(",")
    if ";base64" not in header:
        raise PhotoError("data URL: only base64 data URLs are accepted")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise PhotoError("data URL: the base64 payload is corrupt") from None
    return store_bytes(data, limits, "data URL")


def _download(ref: str, limits: Limits) -> Path:
    try:
        with urllib.request.urlopen(ref, timeout=15) as response:  # noqa: S310 - http(s) only, checked
            data = response.read(limits.max_photo_bytes + 1)
    except OSError as exc:
        raise PhotoError(f"{ref}: could not download ({exc})") from None
    return store_bytes(data, limits, ref)


def _check(path: Path, limits: Limits, label: str) -> tuple[int, int, str]:
    """(width, height, format) of a readable image within limits, else a one-line PhotoError."""
    size = path.stat().st_size
    if size == 0:
        raise PhotoError(f"{label}: the file is empty")
    if size > limits.max_photo_bytes:
        raise PhotoError(f"{label}: {size / 1e6:.1f} MB is over the {limits.max_photo_bytes / 1e6:.0f} MB limit")
    _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                _check_size(width, height, limits, label)
                fmt = img.format or ""
                img.load()
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError(
            f"{label}: the image is over the {limits.max_photo_pixels / 1e6:.0f} megapixel limit"
        ) from None
    except UnidentifiedImageError:
        raise PhotoError(f"{label}: not a readable image ({READABLE})") from None
    except (OSError, SyntaxError, ValueError, RuntimeError) as exc:  # pillow-heif raises RuntimeError
        raise PhotoError(f"{label}: the image is corrupt or truncated ({exc})") from None
    return width, height, fmt


def _check_size(width: int, height: int, limits: Limits, label: str) -> None:
    if width * height > limits.max_photo_pixels:
        raise PhotoError(
            f"{label}: {width}x{height} pixels is over the {limits.max_photo_pixels / 1e6:.0f} megapixel limit"
        )
    if min(width, height) < limits.min_photo_side:
        raise PhotoError(
            f"{label}: {width}x{height} pixels is too small to show the item; take a photo at least"
            f" {limits.min_photo_side} pixels on its shorter side"
        )


def _local(ref: str) -> Path:
    """The file `ref` names, if this process may read it; a confined process refuses every other
    path with the same message, so a refusal does not tell whether a file exists."""
    path = Path(ref).expanduser()
    if _roots is None:
        if path.is_dir():
            raise PhotoError(f"{ref}: a folder, not a photo; give the photo files in it")
        if not path.is_file():
            raise PhotoError(f"{ref}: no such file")
        return path
    try:
        real = Path(os.path.realpath(path))  # symlinks out of an allowed folder are outside it
        allowed = path.is_absolute() and any(real.is_relative_to(root) for root in _roots) and real.is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte
        allowed = False
    if not allowed:
        raise PhotoError(NOT_SERVED)
    return real


def resolve(ref: str, limits: Limits, *, allow_urls: bool = False) -> Photo:
    """A checked local `Photo` for a path or data URL (an http(s) URL only with `allow_urls`)."""
    if ref.startswith("data:"):
        path, label = _decode_data_url(ref, limits), "data URL"
    elif ref.startswith(("http://", "https://")) and allow_urls and _roots is None:
        path, label = _download(ref, limits), ref[:40] + ("..." if len(ref) > 40 else "")
    elif ref.startswith(("http://", "https://")) and _roots is None:
        raise PhotoError(f"{ref[:80]}: web addresses are not fetched; download the photo and give its file")
    else:
        path, label = _local(ref), ref
    width, height, fmt = _check(path, limits, label)
    if fmt not in EXTENSIONS:  # a HEIC file: the store keeps a copy every reader can open
        path = store_bytes(path.read_bytes(), limits, label)
    digest = _sha256(str(path.resolve()), path.stat().st_mtime_ns)
    return Photo(path=str(path.resolve()), sha256=digest, width=width, height=height)


@lru_cache(maxsize=4096)
def _sha256(path: str, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


STUDIO_FRAME = 8 / 128
"""The outer frame a studio shot's background shows in: this share of each side."""
STUDIO_LIGHT = 0.6
"""A studio shot: at least this share of its frame's pixels near-white (every channel over 215).
On the shared datasets' photos, which say what they are, studio shots give 0.84-1.0 (5th-95th
percentile), shop and home photos 0-0.26; at 0.6, 0 of 3,017 grocery, 16 of 3,409 clothing (clothes
laid on white sheets) and 6 of 1,500 fashion photos are taken for the other kind."""


def looks_studio(path: str, sha256: str) -> bool:
    """Whether a photo looks like a studio shot: a product on a plain light background, its frame
    near-white; a shop or home photo has a shelf, a floor, a room there."""
    small = np.asarray(load_rgb(path, sha256).resize((128, 128)), dtype=np.uint8)  # (128, 128, 3)
    b = round(128 * STUDIO_FRAME)
    frame = np.concatenate([small[:b].reshape(-1, 3), small[-b:].reshape(-1, 3),
                            small[b:-b, :b].reshape(-1, 3), small[b:-b, -b:].reshape(-1, 3)])
    return float((frame.min(axis=1) > 215).mean()) >= STUDIO_LIGHT


@lru_cache(maxsize=64)
def load_rgb(path: str, sha256: str, max_side: int = 1024) -> Image.Image:
    """The photo as an 8-bit RGB image upright as shot, shrunk so its longest side is at most
    `max_side` (cached by hash)."""
    if _roots is not None:
        _local(path)  # a confined process loads no pixels from outside its folders either
    _register_heif()
    with Image.open(path) as img:
        img.draft(None, (max_side, max_side))  # JPEG: decode at a reduced scale
        rgb = to_rgb(ImageOps.exif_transpose(img))
    rgb.thumbnail((max_side, max_side))
    return rgb


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB of any mode: 16/32-bit levels scaled (not clipped to white), transparency
    composited on white (not black), palette and CMYK converted."""
    if img.mode in {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}:
        levels = np.asarray(img, dtype=np.float64)  # (H, W)
        peak = float(levels.max(initial=0))
        # 16-bit files span 0..65535 even when dark; a float image may span 0..1
        top = 1.0 if img.mode == "F" and peak <= 1 else 255.0 if peak <= 255 and "16" not in img.mode else 65535.0
        img = Image.fromarray(np.clip(levels / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")
