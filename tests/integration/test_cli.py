"""The `ipl` command as a user runs it: a real subprocess, real index, real models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from helpers import QUERIES, SAMPLE

IPL = [sys.executable, "-m", "ipl_graph.face.cli"]
KEYS = {"category", "category_confidence", "screened", "quality", "attributes", "evidence", "title", "description",
        "references", "degraded", "safety", "price"}


def ipl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*IPL, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_list_json_gives_the_whole_listing(sample_index):
    out = ipl("list", str(QUERIES / "Banana_001.jpg"), "--index", sample_index, "--json", "--hint", "very ripe")
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    assert set(listing) == KEYS
    assert 0 < listing["quality"]["score"] <= 100 and listing["quality"]["tips"]
    assert listing["category"] == "Banana" and "very ripe" in listing["description"]
    assert set(listing["attributes"]) == set(listing["evidence"])


def test_list_streams_text_then_summary(sample_index):
    out = ipl("list", str(QUERIES / "Banana_001.jpg"), "--index", sample_index, "--lang", "zh")
    assert out.returncode == 0, out.stderr
    assert "Category:    Banana" in out.stdout and "成色" in out.stdout


@pytest.fixture
def bad_photos(tmp_path) -> dict[str, Path]:
    text = tmp_path / "notes.jpg"
    text.write_text("this is a text file")
    empty = tmp_path / "empty.jpg"
    empty.touch()
    whole = tmp_path / "whole.jpg"
    Image.effect_noise((300, 300), 60).convert("RGB").save(whole)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(whole.read_bytes()[:2000])
    huge = tmp_path / "huge.png"
    Image.new("1", (20000, 20000)).save(huge)
    return {"text": text, "empty": empty, "truncated": truncated, "huge": huge}


@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "huge"])
def test_bad_photo_is_one_line_and_exit_2(sample_index, bad_photos, kind):
    out = ipl("list", str(bad_photos[kind]), "--index", sample_index)
    assert out.returncode == 2
    assert out.stderr.startswith("ipl: error: ") and out.stderr.count("\n") == 1, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_missing_index_is_one_line_and_exit_2(tmp_path):
    out = ipl("list", str(QUERIES / "Banana_001.jpg"), "--index", str(tmp_path / "nowhere"))
    assert out.returncode == 2 and "no catalog index" in out.stderr and "ipl index" in out.stderr
    assert out.stderr.count("\n") == 1


def test_index_skips_bad_rows_and_adds_only_what_is_new(tmp_path):
    rows = [json.loads(line) for line in (SAMPLE / "listings.jsonl").read_text().splitlines()[:6]]
    folder = tmp_path / "cat"
    (folder / "images").mkdir(parents=True)
    for row in rows:
        shutil.copy(SAMPLE / row["images"][0], folder / row["images"][0])
    (folder / "images" / "broken.jpg").write_text("not an image")
    bad = [{**rows[0], "id": "broken", "images": ["images/broken.jpg"]},
           {**rows[0], "id": "missing", "images": ["images/gone.jpg"]}]
    listings = folder / "listings.jsonl"
    listings.write_text("".join(json.dumps(r) + "\n" for r in rows[:4] + bad))
    index = str(tmp_path / "idx")
    first = ipl("index", str(listings), "--index", index)
    assert first.returncode == 0, first.stderr
    assert "added 4 images" in first.stderr and "2 skipped" in first.stderr
    assert "skipped broken:" in first.stderr and "skipped missing:" in first.stderr
    listings.write_text("".join(json.dumps(r) + "\n" for r in rows))
    second = ipl("index", str(listings), "--index", index)
    assert "added 2 images, 4 already indexed" in second.stderr


def test_index_of_a_missing_file_is_one_line(tmp_path):
    out = ipl("index", str(tmp_path / "nope.jsonl"), "--index", str(tmp_path / "idx"))
    assert out.returncode == 2 and "no such listings file" in out.stderr


def test_mine_templates_writes_a_policy_file_the_loader_accepts(tmp_path):
    out_file = tmp_path / "templates.yaml"
    out = ipl("mine-templates", str(SAMPLE / "listings.jsonl"), "--out", str(out_file))
    assert out.returncode == 0, out.stderr
    import yaml

    from ipl_graph.policies import Templates

    mined = Templates.model_validate(yaml.safe_load(out_file.read_text()))
    assert mined.categories["Juice"] == ["Brand"] and mined.categories["Banana"] == []
