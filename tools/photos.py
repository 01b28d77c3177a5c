"""Resolve photo references (paths, URLs, data URLs) to checked local files, and load pixels.

Graph state only ever holds the resulting `Photo` (path + sha256); pixels are loaded on demand and
cached per process by content hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import urllib.request
import warnings
from functools import lru_cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ipl_graph.errors import PhotoError
from ipl_graph.policies import Limits
from ipl_graph.schemas import Photo

EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "ipl" / "photos"


def store_bytes(data: bytes, limits: Limits, label: str = "upload") -> Path:
    """Check `data` is an acceptable image and store it content-addressed; returns its path."""
    if len(data) > limits.max_photo_bytes:
        raise PhotoError(f"{label}: {len(data) / 1e6:.1f} MB is over the {limits.max_photo_bytes / 1e6:.0f} MB limit")
    digest = hashlib.sha256(data).hexdigest()
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{digest}.tmp"
    tmp.write_bytes(data)
    fmt = _check(tmp, limits, label)[2]
    final = folder / f"{digest}{EXTENSIONS.get(fmt, '.img')}"
    tmp.replace(final)
    return final


def _fetch(ref: str, limits: Limits) -> Path:
    if ref.startswith("data:"):
        header, _, payload = ref.partition(",")
        if ";base64" not in header:
            raise PhotoError("data URL: only base64 data URLs are accepted")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise PhotoError("data URL: the base64 payload is corrupt") from None
        return store_bytes(data, limits, "data URL")
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
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > limits.max_photo_pixels:
                    raise PhotoError(
                        f"{label}: {width}x{height} pixels is over the {limits.max_photo_pixels / 1e6:.0f}"
                        " megapixel limit"
                    )
                fmt = img.format or ""
                img.load()
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoError(
            f"{label}: the image is over the {limits.max_photo_pixels / 1e6:.0f} megapixel limit"
        ) from None
    except UnidentifiedImageError:
        raise PhotoError(f"{label}: not a readable image (JPEG, PNG, WebP, GIF or BMP)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PhotoError(f"{label}: the image is corrupt or truncated ({exc})") from None
    return width, height, fmt


def resolve(ref: str, limits: Limits) -> Photo:
    """A checked local `Photo` for a path, http(s) URL or data URL."""
    if ref.startswith(("data:", "http://", "https://")):
        path = _fetch(ref, limits)
        label = ref[:40] + ("..." if len(ref) > 40 else "")
    else:
        path = Path(ref).expanduser()
        label = ref
        if not path.is_file():
            raise PhotoError(f"{ref}: no such file")
    width, height, _ = _check(path, limits, label)
    digest = _sha256(str(path.resolve()), path.stat().st_mtime_ns)
    return Photo(path=str(path.resolve()), sha256=digest, width=width, height=height)


@lru_cache(maxsize=4096)
def _sha256(path: str, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=64)
def load_rgb(path: str, sha256: str, max_side: int = 1024) -> Image.Image:
    """The photo as an RGB image, shrunk so its longest side is at most `max_side` (cached by hash)."""
    with Image.open(path) as img:
        img.draft("RGB", (max_side, max_side))
        rgb = img.convert("RGB")
    rgb.thumbnail((max_side, max_side))
    return rgb
