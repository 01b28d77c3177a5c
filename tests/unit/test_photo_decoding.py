"""Odd but real image files decode to the pixels a person sees: a real sample photo saved as 16-bit,
palette, CMYK, transparent, EXIF-rotated and HEIC comes back close to the 8-bit original. Photos too
small to show an item are refused with one line of guidance; refused bytes leave no file in the
store, and the store stays under its bound."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import QUERIES
from ipl_graph.errors import PhotoError
from ipl_graph.policies import load_policy
from ipl_tools.photos import load_rgb, resolve, store_bytes

LIMITS = load_policy().limits
MILK = QUERIES / "Arla-Standard-Milk_001.jpg"


def original() -> Image.Image:
    with Image.open(MILK) as img:
        return img.convert("RGB")


def pixels(path) -> np.ndarray:
    photo = resolve(str(path), LIMITS)
    return np.asarray(load_rgb(photo.path, photo.sha256), dtype=np.float64)  # (H, W, 3)


def diff(path, expected: Image.Image) -> float:
    return float(np.abs(pixels(path) - np.asarray(expected, dtype=np.float64)).mean())


def save_16bit_grey(img: Image.Image, path) -> None:
    levels = np.asarray(img.convert("L"), dtype=np.uint16) * 257  # 0..255 -> 0..65535
    Image.fromarray(levels).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")  # really a 16-bit file


def test_a_16_bit_png_of_a_real_photo_is_not_white(tmp_path):
    path = tmp_path / "milk16.png"
    save_16bit_grey(original(), path)
    decoded = pixels(path)
    assert decoded.mean() < 200  # the old decoder clipped every level to 255
    assert diff(path, original().convert("L").convert("RGB")) < 1.0


@pytest.mark.parametrize("convert, suffix", [
    (lambda img: img.quantize(256), ".png"),  # a palette image, as GIFs and small PNGs are
    (lambda img: img.convert("CMYK"), ".jpg"),  # as print shops and some scanners save
], ids=["palette", "cmyk"])
def test_palette_and_cmyk_photos_decode_close_to_the_original(tmp_path, convert, suffix):
    path = tmp_path / f"milk{suffix}"
    convert(original()).save(path, quality=95)
    assert diff(path, original()) < 6.0


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_on_white(tmp_path, mode):
    photo = original().convert("RGBA")
    alpha = Image.new("L", photo.size, 0)
    alpha.paste(255, (64, 64, 192, 192))  # the item in the middle, a transparent border
    photo.putalpha(alpha)
    path = tmp_path / f"cutout-{mode}.png"
    if mode == "P":  # a palette with one transparent entry, as GIFs and small PNGs have
        img = photo.convert("RGB").quantize(255)
        img.putpalette([*img.getpalette()[: 255 * 3], 0, 0, 0])  # entry 255: black, made transparent
        img.paste(255, (0, 0, photo.width, 64))
        img.save(path, transparency=255)
    else:
        photo.convert(mode).save(path)
    decoded = pixels(path)
    assert decoded[:40].mean() > 250  # the border is white, not black
    assert decoded[100:150, 100:150].mean() < 250  # the item is still there


def test_an_exif_rotated_photo_is_upright(tmp_path):
    upright = original().crop((0, 0, 256, 160))  # landscape, so a missed turn shows in the size
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; viewers rotate 90° clockwise
    path = tmp_path / "turned.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
    decoded = pixels(path)
    assert decoded.shape == (160, 256, 3)
    assert float(np.abs(decoded - np.asarray(upright, dtype=np.float64)).mean()) < 6.0


def test_heic_from_an_iphone_is_read(tmp_path):
    from pillow_heif import register_heif_opener

    register_heif_opener()
    path = tmp_path / "IMG_0001.HEIC"
    original().save(path, format="HEIF", quality=90)
    assert resolve(str(path), LIMITS).width == 256
    assert diff(path, original()) < 4.0
    stored = store_bytes(path.read_bytes(), LIMITS, "IMG_0001.HEIC", tmp_path / "store")
    assert stored.suffix == ".jpg"  # kept as a JPEG: OpenCV, which NudeNet reads paths with, has no HEIC
    assert cv2.imread(str(stored)).shape == (256, 256, 3)


@pytest.mark.parametrize("size", [(1, 1), (20, 400), (31, 31)])
def test_a_photo_too_small_to_show_an_item_is_refused(tmp_path, size):
    path = tmp_path / "tiny.png"
    original().resize(size).save(path)
    with pytest.raises(PhotoError) as err:
        resolve(str(path), LIMITS)
    message = str(err.value)
    assert f"{size[0]}x{size[1]} pixels is too small" in message and "at least 32 pixels" in message
    assert "\n" not in message


def test_the_smallest_allowed_photo_is_taken(tmp_path):
    path = tmp_path / "small.png"
    original().resize((32, 32)).save(path)
    assert resolve(str(path), LIMITS).width == 32


@pytest.mark.parametrize("data", [b"just some text", b"", b"\x89PNG\r\n\x1a\n" + b"\0" * 100],
                         ids=["text", "empty", "broken-png"])
def test_refused_bytes_leave_no_file_in_the_store(tmp_path, data):
    store = tmp_path / "store"
    store.mkdir()
    with pytest.raises(PhotoError):
        store_bytes(data, LIMITS, "upload", store)
    assert list(store.iterdir()) == []


def test_the_store_keeps_under_its_bound_dropping_the_oldest(tmp_path):
    store = tmp_path / "store"
    photos = []
    for level in range(5):  # five different real photos of about the same size
        buffer = io.BytesIO()
        original().rotate(level * 5).save(buffer, "JPEG", quality=90)
        photos.append(buffer.getvalue())
    bound = int(len(photos[0]) * 2.5)
    limits = LIMITS.model_copy(update={"photo_store_bytes": bound})
    stored = [store_bytes(data, limits, "upload", store) for data in photos]
    left = sorted(store.iterdir())
    assert sum(p.stat().st_size for p in left) <= bound
    assert stored[-1] in left and stored[0] not in left  # the newest stays, the oldest went


def test_ipl_list_of_a_tiny_photo_is_one_line_and_exit_2(tmp_path, capsys):
    from ipl_graph.face.cli import main

    path = tmp_path / "tiny.png"
    original().resize((1, 1)).save(path)
    index = tmp_path / "index"  # there, so the CLI lets the run start: the photo is what fails it
    index.mkdir()
    (index / "chroma.sqlite3").touch()
    assert main(["list", str(path), "--index", str(index)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ipl: error: ") and "1x1 pixels is too small" in err and "\n" not in err
