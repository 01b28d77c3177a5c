"""A third-party searcher that implements only `backends.Searcher` runs the whole graph, and a searcher
that cannot answer degrades the run to image-only writing with `degraded` naming why."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from helpers import QUERIES
from ipl_graph import plugins
from ipl_graph.backends import CatalogModel, Searcher
from ipl_graph.context import Context
from ipl_graph.graph import graph
from ipl_graph.hookspecs import Register, hookimpl
from ipl_graph.schemas import Neighbour, Photo

BANANA = str(QUERIES / "Banana_001.jpg")
HITS = [
    Neighbour(id="b1", similarity=0.93, category="Banana", category_path=["Fruit", "Banana"], title="Organic Banana",
              attributes={"Brand": "Chiquita"}, spu="banana", price=1.5, currency="EUR"),
    Neighbour(id="b2", similarity=0.91, category="Banana", title="Banana bunch", spu="banana"),
    Neighbour(id="a1", similarity=0.40, category="Apple", title="Red apple", spu="apple"),
]


class ListSearcher:
    """Answers every photo with the same hits: only the protocol, no Chroma, no embedder."""

    calibration: CatalogModel | None = None

    def __init__(self, index_dir: str, embedder: str) -> None:
        self.asked: list[str] = []

    def search(self, photos: list[Photo], k: int, text: Sequence[str] = ()) -> list[Neighbour]:
        self.asked.append("search")
        return HITS[:k]

    def lookalikes(self, photos: list[Photo], k: int) -> list[Neighbour]:
        return HITS[:k]

    def identity(self, neighbours: list[Neighbour]) -> float:
        return 0.95 if neighbours and neighbours[0].spu == "banana" else 0.0

    def category_prior(self, photos: list[Photo]) -> dict[str, float] | None:
        return None

    def distribution(self, name: str, photos: list[Photo]) -> dict[str, float]:
        return {}

    def colour_histogram(self, photos: list[Photo]) -> np.ndarray | None:
        return None


class DownSearcher(ListSearcher):
    def search(self, photos: list[Photo], k: int, text: Sequence[str] = ()) -> list[Neighbour]:
        raise ConnectionRefusedError("vector server at 127.0.0.1:9 refused the connection")


class Plugin:
    @hookimpl
    def register_searchers(self, register: Register) -> None:
        register("list", ListSearcher)
        register("down", DownSearcher)


@pytest.fixture
def third_party():
    name = plugins.register(Plugin(), name="test-third-party-searcher")
    yield
    plugins.unregister(name)


def test_the_searcher_satisfies_the_protocol():
    searcher: Searcher = ListSearcher("", "")  # mypy checks this assignment against the protocol
    assert searcher.search([], 2) == HITS[:2]


def test_a_third_party_searcher_runs_the_whole_graph(third_party, tmp_path):
    context = Context(index_dir=str(tmp_path / "none"), searcher="list", ocr="none", nudity="none")
    steps = list(graph.stream({"photos": [BANANA], "hint": "ripe"}, context=context, stream_mode="updates"))
    assert [next(iter(s)) for s in steps] == [
        "check_safety", "search_similar", "categorize", "gate_matches", "extract_attributes", "fetch_template",
        "write_with_references", "generate", "moderate_stream", "truncate", "score_quality"]
    listing = graph.invoke({"photos": [BANANA], "hint": "ripe"}, context=context)
    assert listing["category"] == "Banana" and listing["degraded"] is None
    assert [r["id"] for r in listing["references"]] == ["b1", "b2"]
    assert listing["attributes"]["Brand"] == "Chiquita"  # the references agree on it
    assert listing["title"] and "ripe" in listing["description"].lower()


def test_a_searcher_that_cannot_answer_degrades_to_image_only(third_party, tmp_path):
    context = Context(index_dir=str(tmp_path / "none"), searcher="down", ocr="none", nudity="none")
    steps = list(graph.stream({"photos": [BANANA], "hint": "ripe"}, context=context, stream_mode="values"))
    final = steps[-1]
    assert final["mode"] == "image_only" and final["references"] == [] and final["category"] is None
    assert final["degraded"].startswith("catalog search failed (ConnectionRefusedError: vector server")
    assert "ripe" in final["description"].lower()


def test_a_missing_index_degrades_to_image_only(tmp_path):
    context = Context(index_dir=str(tmp_path / "none"), ocr="none", nudity="none")
    listing = graph.invoke({"photos": [BANANA]}, context=context)
    assert listing["degraded"].startswith("catalog search failed (IndexMissingError: no catalog index at")
    assert listing["title"] and listing["description"]
