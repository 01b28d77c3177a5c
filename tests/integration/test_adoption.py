"""`ipl adoption` against a real `ipl serve`: listings written by the graph, saved by a seller with real
edits through the same route the page uses, then measured from the server's thread histories."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from helpers import QUERIES, ipl_server
from ipl_graph.face.adoption import Pair, adoption, edit_distance, kept
from ipl_graph.face.cli import main
from ipl_graph.face.serve import free_port

PHOTOS = ["Banana_001.jpg", "Arla-Standard-Milk_001.jpg", "Bravo-Apple-Juice_001.jpg", "Oatly-Oat-Milk_001.jpg"]


def test_kept_and_edit_distance():
    assert kept("Selling my milk. Unopened.", "Selling my milk. Unopened.") == 1.0
    assert kept("abcdef", "") == 0.0
    assert kept("Selling my milk. Unopened.", "Selling my milk.") == 0.75  # three of its four words
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3
    report = adoption([Pair("a", {"title": "x"}, None)])
    assert report["saved"] == 0 and report["title"]["built_on_generated"] is None


@pytest.fixture(scope="module")
def server(sample_index, tmp_path_factory) -> Iterator[str]:
    with ipl_server(sample_index, tmp_path_factory.mktemp("server") / "server.log") as (url, _):
        yield url


def list_and_save(http: httpx.Client, photo: str, edit) -> dict:
    """Upload, run the graph on a new thread, save the seller's edit (None: never saved)."""
    path = http.post("/ipl/photos", content=(QUERIES / photo).read_bytes()).json()["photo"]
    thread = http.post("/threads", json={}).json()["thread_id"]
    listing = http.post(f"/threads/{thread}/runs/wait", json={"assistant_id": "listing",
                                                              "input": {"photos": [path]}}).json()
    if edit is not None:
        values = edit(listing)
        response = http.post(f"/threads/{thread}/state", json={"values": values, "as_node": "score_quality"})
        assert response.status_code == 200, response.text
    return listing


def test_adoption_from_a_server_with_real_edits(server, capsys):
    edits = [
        lambda lst: {"title": lst["title"], "description": lst["description"]},  # kept as written
        lambda lst: {"title": lst["title"] + ", 1 L", "description": lst["description"] + " Pickup in town."},
        lambda lst: {"title": "Juice", "description": "Fresh juice, bought on Monday, still cold."},  # rewritten
        None,  # listed, never saved
    ]
    with httpx.Client(base_url=server, timeout=180) as http:
        listings = [list_and_save(http, photo, edit) for photo, edit in zip(PHOTOS, edits, strict=True)]
    assert all(lst["description"] and lst["quality"]["score"] > 0 for lst in listings)

    assert main(["adoption", "--url", server]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["generated"] == 4 and report["saved"] == 3
    description = report["description"]
    assert description["built_on_generated"] == pytest.approx(2 / 3, abs=1e-3)
    assert description["keeps_over_half"] == pytest.approx(2 / 3, abs=1e-3)
    rewritten = listings[2]["description"]
    rewrite = "Fresh juice, bought on Monday, still cold."
    expected = (0 + len(" Pickup in town.") + edit_distance(rewritten, rewrite)) / 3
    assert description["mean_edit_distance"] == pytest.approx(expected, abs=0.1)
    assert report["attributes"]["keeps_over_half"] == 1.0  # attributes the seller did not touch


def test_adoption_of_a_server_that_is_not_there_is_one_line(capsys):
    assert main(["adoption", "--url", f"http://127.0.0.1:{free_port()}"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
