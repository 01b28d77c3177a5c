"""Bad photos get one clear PhotoError line; good ones resolve to a path and a content hash."""

from __future__ import annotations

import base64

import pytest
from PIL import Image

from ipl_graph.errors import PhotoError
from ipl_graph.policies import load_policy
from ipl_tools.photos import resolve

LIMITS = load_policy().limits


def test_resolves_a_real_photo(tmp_path):
    src = tmp_path / "a.jpg"
    Image.new("RGB", (64, 48), "red").save(src)
    photo = resolve(str(src), LIMITS)
    assert (photo.width, photo.height) == (64, 48)
    assert len(photo.sha256) == 64


def test_data_url_is_stored_content_addressed(tmp_path):
    src = tmp_path / "a.png"
    Image.new("RGB", (64, 64), "blue").save(src)
    url = "data:image/png;base64," + base64.b64encode(src.read_bytes()).decode()
    first, second = resolve(url, LIMITS), resolve(url, LIMITS)
    assert first.path == second.path and first.path.endswith(".png")
    assert first.sha256 in first.path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_text("hello, I am text"), "not a readable image"),
        (lambda p: p.write_bytes(b""), "empty"),
    ],
    ids=["text-named-jpg", "zero-byte"],
)
def test_bad_photo_is_one_line_error(tmp_path, make, message):
    path = tmp_path / "photo.jpg"
    make(path)
    with pytest.raises(PhotoError) as err:
        resolve(str(path), LIMITS)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_truncated_jpeg(tmp_path):
    whole = tmp_path / "whole.jpg"
    Image.effect_noise((300, 300), 60).convert("RGB").save(whole, quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(PhotoError, match="corrupt or truncated"):
        resolve(str(cut), LIMITS)


def test_real_huge_png_is_refused(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(path)  # 400 megapixels, a few hundred kB on disk
    with pytest.raises(PhotoError, match="megapixel limit"):
        resolve(str(path), LIMITS)


def test_missing_file_folder_and_corrupt_data_url(tmp_path):
    with pytest.raises(PhotoError, match="no such file"):
        resolve("/nonexistent/photo.jpg", LIMITS)
    with pytest.raises(PhotoError, match="a folder, not a photo"):
        resolve(str(tmp_path), LIMITS)
    with pytest.raises(PhotoError, match="corrupt"):
        resolve("data:image/png;base64,@@@not-base64", LIMITS)
