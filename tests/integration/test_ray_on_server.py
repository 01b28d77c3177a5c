"""`ipl index --ray` into a real Chroma server (issue #14's done-when check): a local Ray cluster embeds
catalog photos, the one writer adds them to `chroma run` on a free loopback port, and a client with an
empty home and nothing but the URL lists a photo as the embedded folder index of the same listings
lists it: the same category, title, attributes and trusted references."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import QUERIES, SAMPLE, chroma_server, write_policy
from ipl_graph.face.cli import main
from ipl_tools.catalog.index import read_listings

pytestmark = pytest.mark.slow
BANANA = str(QUERIES / "Banana_001.jpg")
SAME = ("category", "category_confidence", "title", "attributes", "references")


def ipl_list(index: str, policy: str, home) -> dict:
    """`ipl list --json` in a fresh process whose home (and working folder) is an empty folder."""
    home.mkdir()
    argv = ["list", BANANA, "--index", index, "--policy", policy, "--json", "--no-worker"]
    done = subprocess.run([sys.executable, "-m", "ipl_graph.face.cli", *argv], cwd=home,
                          env={**os.environ, "HOME": str(home)}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_a_server_index_built_on_ray_lists_what_the_embedded_index_lists(tmp_path):
    listings = tmp_path / "listings.jsonl"  # the first 102 sample rows: every fruit, the four bananas among them
    rows = list(read_listings(SAMPLE / "listings.jsonl"))[:102]
    listings.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    policy = write_policy(tmp_path, thresholds={"spu_gate": 0.0})  # open: the nearest products are trusted
    assert main(["index", str(listings), "--index", str(tmp_path / "embedded")]) == 0
    with chroma_server(tmp_path / "chroma", tmp_path / "chroma.log") as url:
        assert main(["index", str(listings), "--index", url, "--ray", "--workers", "1"]) == 0
        served = ipl_list(url, policy, tmp_path / "client")
    embedded = ipl_list(str(tmp_path / "embedded"), policy, tmp_path / "home")
    assert {f: served[f] for f in SAME} == {f: embedded[f] for f in SAME}
    assert served["category"] == "Banana" and served["references"]
    assert not list((tmp_path / "client").rglob("ipl-model.npz"))  # the model came from the server
