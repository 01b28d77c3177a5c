"""search_similar: visual search for the seller's product in the catalog index."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from langgraph.runtime import Runtime

from ipl_graph import plugins
from ipl_graph.context import Context
from ipl_graph.schemas import Neighbour, Photo
from ipl_graph.state import State
from ipl_tools.index import Catalog


class ChromaSearcher:
    """kNN over the Chroma catalog with the project's image embedder; results cached per photo set."""

    def __init__(self, index_dir: str, embedder: str) -> None:
        self.catalog = Catalog(index_dir, embedder)
        self.embedder = plugins.get("embedder", embedder)
        self._cache: OrderedDict[tuple[tuple[str, ...], int], list[Neighbour]] = OrderedDict()

    def search(self, photos: list[Photo], k: int) -> list[Neighbour]:
        key = (tuple(p.sha256 for p in photos), k)
        if key not in self._cache:
            self._cache[key] = self.catalog.query(self.embedder.embed(photos), k)
            if len(self._cache) > 256:
                self._cache.popitem(last=False)
        return self._cache[key]


def photos_of(state: State) -> list[Photo]:
    return [Photo.model_validate(p) for p in state.images]


def searcher_for(runtime: Runtime[Context]) -> Any:
    ctx = runtime.context
    return plugins.get("searcher", ctx.searcher, ctx.index_dir, ctx.embedder)


def search_similar(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    hits = searcher_for(runtime).search(photos_of(state), runtime.context.top_k)
    return {"neighbours": [h.model_dump() for h in hits]}
