"""The catalog index on a real Chroma server (`chroma run` on a free loopback port, issue #14): `ipl
index`, `ipl list`, `ipl eval` and `ipl serve` take its URL where they take a folder; the learned
model lives on the server, versioned and swapped whole, so a client with an empty home and nothing
but the URL lists exactly what the embedded index lists; one writer at a time holds a lease."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from langgraph_sdk import get_sync_client

from helpers import QUERIES, SAMPLE, chroma_server, ipl_server
from ipl_graph.face.cli import main
from ipl_tools.catalog.chroma_server import POINTER, WRITER, ServerIndex, ServerModelStore
from ipl_tools.catalog.index import Catalog

PAIR = [str(QUERIES / "Bravo-Apple-Juice_001.jpg"), str(SAMPLE / "images" / "Bravo-Apple-Juice_Iconic.jpg")]


@pytest.fixture(scope="module")
def chroma(tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("chroma")
    with chroma_server(folder / "data", folder / "chroma.log") as url:
        yield url


@pytest.fixture(scope="module")
def server_index(chroma) -> str:
    """The sample catalog indexed by `ipl index` into its own collection, tenant and database."""
    url = f"{chroma}?collection=grocery&tenant=shop&database=main"
    assert main(["index", str(SAMPLE / "listings.jsonl"), "--index", url]) == 0
    return url


def ipl_list(index: str, home) -> dict:
    """`ipl list --json` in a fresh process whose home (and working folder) is an empty folder."""
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    argv = ["list", *PAIR, "--index", index, "--json", "--no-worker"]  # no warm worker outlives the test
    done = subprocess.run([sys.executable, "-m", "ipl_graph.face.cli", *argv], cwd=home, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_a_client_with_only_the_url_lists_what_the_embedded_index_lists(server_index, sample_index, tmp_path):
    served = ipl_list(server_index, tmp_path / "client")
    assert served == ipl_list(sample_index, tmp_path / "embedded")
    assert served["category"] == "Juice" and served["attributes"]["Brand"] == "Bravo"
    assert not list(tmp_path.rglob("ipl-model.npz"))  # the model came from the server


def test_the_model_is_versioned_on_the_server_and_swapped_whole(server_index):
    writer = Catalog(server_index, create=True)
    assert writer.server is not None
    before = writer.server.stamp()
    writer.fit()
    after = writer.server.stamp()
    assert before is not None and after is not None and after[0] == before[0] + 1
    kept = writer.server.collection.get(include=["metadatas"])
    versions = {m["version"] for i, m in zip(kept["ids"], kept["metadatas"], strict=True) if i != POINTER}
    assert versions <= {after[0], after[0] - 1}  # the one before stays for readers in flight
    assert writer._learned_names() == [writer.model().collection]  # the replaced projection is gone
    reader = Catalog(server_index)
    assert reader.model().count == writer.count() == 324 and reader.model().collection == writer.model().collection


def test_a_model_larger_than_one_request_is_written_in_parts_and_read_back_whole(server_index, monkeypatch):
    """`chroma run` refuses a request over 40 MiB ('Payload too large'); a 100k catalog's model is tens of
    MB. Shrunk here: chunks of 100 kB, 2 a request, so the sample's ~1 MB model takes several requests."""
    from ipl_tools.catalog import chroma_server

    monkeypatch.setattr(chroma_server, "CHUNK_BYTES", 100_000)
    monkeypatch.setattr(chroma_server, "CHUNKS_PER_REQUEST", 2)
    writer = Catalog(server_index, create=True)
    assert writer.server is not None
    model = writer.model()
    writer.server.save(model)
    pointer = writer.server.pointer()
    assert pointer is not None and pointer["chunks"] > 2 * 2
    again = Catalog(server_index).model()
    assert again.collection == model.collection and again.category_stated == model.category_stated
    assert again.words == model.words and (again.mean == model.mean).all()


def take(store: ServerModelStore, got: list[float]) -> None:
    with store.locked():
        got.append(time.time())


def test_one_writer_at_a_time_holds_the_servers_lease(server_index):
    collection = Catalog(server_index).server.collection  # type: ignore[union-attr]
    where = ServerIndex.parse(server_index)
    first, second = ServerModelStore(where, collection), ServerModelStore(where, collection)
    got: list[float] = []
    with first.locked():
        waiting = threading.Thread(target=take, args=(second, got))
        waiting.start()
        time.sleep(2.5)
        assert not got and first.writer_active()
    released = time.time()
    waiting.join(timeout=10)
    assert got and got[0] >= released  # it took the lease once the first writer let go
    collection.delete(ids=[WRITER])
    # A writer that died leaves a lease nobody renews: the next writer takes it over once it expires.
    collection.upsert(ids=[WRITER], embeddings=[[1.0]], metadatas=[{"owner": "dead", "expires": time.time() - 1}])
    third = ServerModelStore(where, collection)
    with third.locked():
        assert collection.get(ids=[WRITER])["metadatas"][0]["owner"] == third.owner
    assert not third.writer_active()


@pytest.mark.parametrize("index, message", [
    ("http://127.0.0.1:1", "Could not connect to a Chroma server"),
    ("{chroma}?colection=grocery", "unknown: colection"),
    ("{chroma}?collection=nothing-here", "is empty; add listings with `ipl index`"),
], ids=["no-server", "bad-parameter", "no-collection"])
def test_a_bad_url_is_one_line(chroma, index, message, capsys):
    assert main(["list", PAIR[0], "--index", index.format(chroma=chroma)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_serve_and_eval_take_the_url(server_index, tmp_path):
    with ipl_server(server_index, tmp_path / "server.log", "--photos-dir", str(SAMPLE)) as (url, _):
        listing = get_sync_client(url=url, timeout=120).runs.wait(None, "listing", input={"photos": PAIR})
        assert listing["category"] == "Juice" and listing["attributes"]["Brand"] == "Bravo"
    out = tmp_path / "report.json"
    assert main(["eval", "--catalog", str(SAMPLE / "listings.jsonl"), "--queries", str(SAMPLE / "queries.jsonl"),
                 "--index", server_index, "--limit", "3", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n_queries"] == 3 and report["category_acc"] >= 2 / 3
