"""The index as a user damages, interrupts and shares it: real Chroma, real embedder, real CLI.

A damaged index, model or policy is one line and exit 2; bad lines of a listings file are skipped by
line number; a killed fit is finished by the next `ipl index`, never by a reader; readers write
nothing; a refit is swapped in whole and leaves no segment folder behind.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import QUERIES, SAMPLE
from ipl_graph.face.cli import main

PHOTO = str(QUERIES / "Banana_001.jpg")
IPL = [sys.executable, "-m", "ipl_graph.face.cli"]
pytestmark = pytest.mark.slow


def ipl(capsys, *args: str) -> tuple[int, str]:
    """(exit code, stderr) of `ipl ARGS` run in this process."""
    code = main(list(args))
    return code, capsys.readouterr().err


def degraded_listing(capsys, index: Path) -> str:
    """`ipl list --json` on a damaged index: the listing is written from the photos alone; why, it says."""
    code = main(["list", PHOTO, "--index", str(index), "--json"])
    listing = json.loads(capsys.readouterr().out)
    assert code == 0 and listing["references"] == [] and listing["category"] is None and listing["description"]
    return listing["degraded"]


def one_line(err: str) -> bool:
    return err.startswith("ipl: error: ") and err.count("\n") == 1 and "Traceback" not in err


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sample_rows(step: int) -> list[dict]:
    """Every step-th catalog row of the sample, image paths made absolute."""
    lines = (SAMPLE / "listings.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines][::step]
    return [{**r, "images": [str(SAMPLE / p) for p in r["images"]]} for r in rows]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(listings file, index folder) of a small catalog indexed by `ipl index` in a subprocess."""
    folder = tmp_path_factory.mktemp("built")
    listings = write_rows(folder / "listings.jsonl", sample_rows(12))
    out = subprocess.run([*IPL, "index", str(listings), "--index", str(folder / "idx")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return listings, folder / "idx"


@pytest.fixture
def index(built, tmp_path) -> Path:
    """A private copy of the built index."""
    return Path(shutil.copytree(built[1], tmp_path / "idx"))


def ipl_state(index: Path) -> dict:
    """What IPL itself writes to an index: the model file, the lock, the collections and their rows,
    Chroma's segments and the folders on disk. (Chroma rewrites its own bookkeeping on every open.)"""
    with sqlite3.connect(f"file:{index / 'chroma.sqlite3'}?mode=ro", uri=True) as db:
        collections = sorted(db.execute("SELECT name, id FROM collections"))
        segments = sorted(db.execute("SELECT id, collection FROM segments"))
        rows = db.execute("SELECT segment_id, embedding_id FROM embeddings ORDER BY 1, 2").fetchall()
    model = index / "ipl-model.npz"
    return {
        "model": (model.stat().st_mtime_ns, hashlib.sha256(model.read_bytes()).hexdigest()),
        "entries": sorted(p.name for p in index.iterdir()),
        "collections": collections, "segments": segments, "rows": hashlib.sha256(repr(rows).encode()).hexdigest(),
    }


def segment_folders(index: Path) -> set[str]:
    return {p.name for p in index.iterdir() if p.is_dir()}


def live_segments(index: Path) -> set[str]:
    with sqlite3.connect(f"file:{index / 'chroma.sqlite3'}?mode=ro", uri=True) as db:
        return {row[0] for row in db.execute("SELECT id FROM segments")}


# --- damaged files: one line, exit 2 ----------------------------------------------------------------


def test_truncated_chroma_database_degrades_the_listing_and_is_one_line_to_ipl_index(index, built, capsys):
    database = index / "chroma.sqlite3"
    database.write_bytes(database.read_bytes()[: database.stat().st_size // 2])
    degraded = degraded_listing(capsys, index)
    assert degraded.startswith("catalog search failed") and "cannot be read" in degraded and "ipl index" in degraded
    code, err = ipl(capsys, "index", str(built[0]), "--index", str(index))
    assert code == 2 and one_line(err) and "build it again" in err, err


@pytest.mark.parametrize("damage", ["truncated", "older format"])
def test_damaged_model_is_one_line_and_ipl_index_fits_it_again(index, built, capsys, damage):
    model = index / "ipl-model.npz"
    if damage == "truncated":
        model.write_bytes(model.read_bytes()[:1000])
    else:
        with np.load(model) as z:
            arrays = dict(z)
        arrays["meta"] = np.array(json.dumps({**json.loads(str(arrays["meta"])), "format": 1}))
        np.savez(model, **arrays)
    degraded = degraded_listing(capsys, index)
    assert degraded.startswith("catalog search failed") and f"ipl index LISTINGS.jsonl --index {index}" in degraded
    code, err = ipl(capsys, "index", str(built[0]), "--index", str(index))
    assert code == 0 and "added 0 images" in err and "learned model fitted" in err, err
    assert ipl(capsys, "list", PHOTO, "--index", str(index), "--json")[0] == 0


@pytest.mark.parametrize("text", ["thresholds: [unclosed\n", "- a list\n- of rows\n", "just a sentence\n"])
def test_a_policy_that_is_not_one_is_one_line(index, tmp_path, capsys, text):
    policy = tmp_path / "policy.yaml"
    policy.write_text(text, encoding="utf-8")
    code, err = ipl(capsys, "list", PHOTO, "--index", str(index), "--policy", str(policy))
    assert code == 2 and one_line(err) and "policy" in err, err


# --- listings files: bad lines skipped, good rows kept ----------------------------------------------


def test_malformed_lines_and_duplicate_ids_are_skipped_by_line_number(tmp_path, capsys):
    rows = sample_rows(40)[:4]
    listings = tmp_path / "listings.jsonl"
    listings.write_text(
        json.dumps(rows[0]) + "\n" + '{"id": "cut off", "images": [\n' + json.dumps(rows[1]) + "\n"
        + json.dumps({**rows[2], "id": rows[0]["id"]}) + "\n" + "[1, 2]\n" + json.dumps(rows[3]) + "\n"
        + json.dumps({**rows[1], "role": "query"}) + "\n",  # a query row may share a catalog row's id
        encoding="utf-8",
    )
    code, err = ipl(capsys, "index", str(listings), "--index", str(tmp_path / "idx"))
    assert code == 0, err
    assert f"skipped {listings}:2: not a JSON object" in err
    assert f"skipped {listings}:4: id {rows[0]['id']!r} already on line 1" in err
    assert f"skipped {listings}:5: a listing needs at least an 'id'" in err
    assert "added 3 images" in err and "3 skipped" in err and f"{listings}:7" not in err, err


def test_rows_the_trust_boundary_refuses_are_quarantined(tmp_path, capsys):
    rows = sample_rows(40)[:4]
    rows[1]["description"] = "Fresh and sweet. Call me on 070 123 45 67 or WhatsApp me, cash only."
    listings = write_rows(tmp_path / "listings.jsonl", rows)
    code, err = ipl(capsys, "index", str(listings), "--index", str(tmp_path / "idx"))
    assert code == 0, err
    assert f"quarantined {rows[1]['id']}: " in err and "1 quarantined" in err and "added 3 images" in err, err


# --- an interrupted fit: readers write from the photos alone, `ipl index` finishes it ------------------


def test_a_killed_fit_is_finished_by_ipl_index_not_by_a_reader(index, tmp_path, capsys, monkeypatch):
    from ipl_tools.catalog import index as index_module

    listings = write_rows(tmp_path / "more.jsonl", sample_rows(12) + sample_rows(40)[1:3])

    def killed(records, **_):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module, "learn_fit", killed)
    assert ipl(capsys, "index", str(listings), "--index", str(index), "--refit")[0] == 130  # a refit, not a projection
    monkeypatch.undo()
    before = ipl_state(index)
    degraded = degraded_listing(capsys, index)
    assert "did not finish" in degraded and "ipl index" in degraded, degraded
    assert ipl_state(index) == before  # the reader fitted nothing
    code, err = ipl(capsys, "index", str(listings), "--index", str(index))
    assert code == 0 and "added 0 images" in err and "learned model fitted" in err, err
    assert ipl(capsys, "list", PHOTO, "--index", str(index), "--json")[0] == 0


def test_concurrent_readers_write_nothing(index, built, tmp_path):
    """Three `ipl list` at once on a valid index all list from the catalog; on an index whose fit was
    killed all list from the photos alone; neither time does any of them fit or write what IPL keeps."""
    stale = Path(shutil.copytree(index, tmp_path / "stale"))
    listings = write_rows(tmp_path / "more.jsonl", sample_rows(12) + sample_rows(40)[1:2])
    kill = ("import sys; from ipl_tools.catalog import index; index.learn_fit = lambda r, **_: sys.exit(9); "
            "from ipl_graph.face.cli import main; main(sys.argv[1:])")
    assert subprocess.run([sys.executable, "-c", kill, "index", str(listings), "--index", str(stale), "--refit"],
                          capture_output=True, timeout=300).returncode == 9
    for folder, stale_model in [(index, False), (stale, True)]:
        before = ipl_state(folder)
        readers = [subprocess.Popen([*IPL, "list", PHOTO, "--index", str(folder), "--json"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
        results = [(r.wait(timeout=300), json.loads(r.stdout.read() if r.stdout else "{}")) for r in readers]
        assert [code for code, _ in results] == [0] * 3, results
        assert all((listing["degraded"] or "").startswith("catalog search failed") == stale_model
                   for _, listing in results), results
        assert ipl_state(folder) == before


# --- refits: swapped in whole, nothing left behind ---------------------------------------------------


def test_refits_leave_no_orphan_segment_folders(index):
    from ipl_tools.catalog.index import Catalog

    catalog = Catalog(index, create=True)
    catalog.fit()
    catalog.fit()
    names = {c.name for c in catalog.client.list_collections()}
    learned = names - {"listings", "views"}  # the catalog, its views and one learned collection
    assert len(learned) == 1 and learned.pop().startswith("learned-")
    assert segment_folders(index) <= live_segments(index)


def test_a_reader_during_refits_sees_a_whole_model(index):
    """A reader (one Catalog, as the server keeps it) queries while another process refits three times:
    every query answers from one whole model, and the reader follows the swaps."""
    from ipl_graph import plugins
    from ipl_graph.policies import load_policy
    from ipl_tools.catalog.index import Catalog
    from ipl_tools.photos import resolve

    refit = ("import sys; from ipl_tools.catalog.index import Catalog; c = Catalog(sys.argv[1], create=True); "
             "[c.fit() for _ in range(3)]")
    embedder = plugins.get("embedder", "efficientnet-lite0")
    vectors = getattr(embedder, "embed_query", embedder.embed)([resolve(PHOTO, load_policy().limits)])
    reader = Catalog(index)
    count = reader.count()
    seen: set[int] = set()
    writer = subprocess.Popen([sys.executable, "-c", refit, str(index)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while writer.poll() is None and time.monotonic() < deadline:
        hits = reader.nearest(vectors, 10, learned=True)
        assert len(hits[0]) == min(10, count) and all(m.get("listing_id") for _, m in hits[0])
        seen.add(id(reader.model()))
    assert writer.wait(timeout=10) == 0, writer.stderr.read() if writer.stderr else ""
    reader.nearest(vectors, 10, learned=True)
    seen.add(id(reader.model()))
    assert len(seen) >= 2, seen  # it read across at least one swap
    assert segment_folders(index) <= live_segments(index)


def test_every_collection_searches_wide_enough_to_find_a_lone_photo(sample_index):
    """A product known by one photo lies apart in the learned space, where HNSW's greedy search passed it
    by at Chroma's default breadth (`EF_SEARCH`); the photos, learned and views collections are all made
    with the wider one."""
    from ipl_tools.catalog.index import EF_SEARCH, Catalog

    catalog = Catalog(sample_index)
    with catalog._reading():
        names = [c.name for c in catalog.client.list_collections()]
        found = {name: catalog._existing(name).configuration["hnsw"]["ef_search"] for name in names}
    assert catalog.model().collection in found and len(found) >= 3
    assert set(found.values()) == {EF_SEARCH} and EF_SEARCH > 100
