"""The Chroma searcher: find a seller's product in the catalog index (the `searcher` backend).

Identical-product search works in the space the index learned from its catalog (`fit.py`), over
all photos of the listing (per catalog product, the `spu` group or else the listing: the mean over
the seller's photos of its best-matching photo), one hit per product, so that the top hits are
different candidates.
Text the OCR read off the packaging is matched against the catalog listings' titles and brands; the
match (`Neighbour.text_match`) moves a hit up the order and weighs in the votes (`Neighbour.evidence`),
while the similarity it reports, which the identity gate reads, stays the photos' own. Look-alikes
(for attributes) are the nearest listings in the raw embedding, which keeps colour, gender and style
that the learned projection may drop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ipl_graph import plugins
from ipl_graph.schemas import Neighbour, Photo, with_text
from ipl_tools.catalog.index import Catalog, neighbour
from ipl_tools.catalog.model import IndexModel
from ipl_tools.catalog.text import listing_text, text_match, trigrams

CANDIDATES = 200
"""Catalog photos fetched per query photo before grouping, at least."""


class ChromaSearcher:
    """kNN over the Chroma catalog with the project's image embedder (`backends.Searcher`). The
    photos' vectors and the hits are memoised per photo set: the embedder's and the index's answers,
    asked again by another node, are not computed twice."""

    def __init__(self, index_dir: str, embedder: str) -> None:
        self.catalog = Catalog(index_dir, embedder)
        self.embedder = plugins.embedder(embedder)
        self._cache: OrderedDict[tuple, Any] = OrderedDict()

    @property
    def model(self) -> IndexModel:
        return self.catalog.model()

    @property
    def calibration(self) -> IndexModel:
        return self.model

    def search(self, photos: list[Photo], k: int, text: Sequence[str] = ()) -> list[Neighbour]:
        """The k best products (one listing each), best first; `text` is what OCR read on the photos."""
        return self._memo(("search", _key(photos), k, tuple(text)), lambda: self._products(aggregate(
            self.catalog.nearest(self.vectors(photos), max(k * 20, CANDIDATES), learned=True), product_of),
            k, trigrams(" ".join(text))))

    def lookalikes(self, photos: list[Photo], k: int) -> list[Neighbour]:
        """The k listings that look most alike in the raw embedding, best first."""
        def find() -> list[Neighbour]:
            ranked = aggregate(self.catalog.nearest(self.vectors(photos), k * 3, learned=False))[:k]
            return [neighbour(m["listing_id"], s, m) for s, m in ranked]

        return self._memo(("lookalikes", _key(photos), k), find)

    def vectors(self, photos: list[Photo]) -> np.ndarray:
        """The query photos' vectors (N, D): the embedder's query view where it has one."""
        return self._memo(("vectors", _key(photos)),
                          lambda: getattr(self.embedder, "embed_query", self.embedder.embed)(photos))

    def identity(self, neighbours: list[Neighbour]) -> float:
        return identity(self.model, neighbours)

    def category_prior(self, photos: list[Photo]) -> dict[str, float] | None:
        """The category probe's {category: probability}, where the index's calibration was fitted on
        the blend of vote and probe; else None."""
        model = self.model
        return model.distribution("category", self.vectors(photos)) if model.blends_category else None

    def distribution(self, name: str, photos: list[Photo]) -> dict[str, float]:
        return self.model.distribution(name, self.vectors(photos))

    def colour_histogram(self, photos: list[Photo]) -> np.ndarray:
        """The photos' mean colour histogram (192,): colour is mirror-blind, so the plain view."""
        from ipl_tools.catalog.embedding import part

        return self._memo(("colour", _key(photos)), lambda: part(self.embedder.embed(photos), "colour").mean(0))

    def _memo(self, key: tuple, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._remember(key, compute())
        return self._cache[key]

    def _products(self, ranked: list[tuple[float, dict[str, Any]]], k: int, text: set[str]) -> list[Neighbour]:
        """Products ordered by image similarity with the OCR text match folded in (`Neighbour.evidence`);
        each keeps its image similarity, so the gate still asks the photos whether the top hit is the
        product."""
        matched = [(round(text_match(text, trigrams(listing_text(m)), self.model.idf), 4) if text else 0.0, s, m)
                   for s, m in ranked]
        matched.sort(key=lambda msm: with_text(msm[1], msm[0]), reverse=True)
        return [neighbour(m["listing_id"], s, m, t) for t, s, m in matched[:k]]

    def _remember(self, key: tuple, value: Any) -> None:
        self._cache[key] = value
        if len(self._cache) > 256:
            self._cache.popitem(last=False)


def aggregate(
    hits: list[list[tuple[float, dict[str, Any]]]], key: Callable[[dict[str, Any]], str] = lambda m: m["listing_id"]
) -> list[tuple[float, dict[str, Any]]]:
    """Catalog listings (or products, by `key`) ranked by the mean over the query photos of their
    best photo's similarity; a photo that did not find one counts the lowest similarity seen. Each
    comes with the metadata of its single best-matching photo."""
    best: dict[str, list[float]] = {}
    metas: dict[str, tuple[float, dict[str, Any]]] = {}
    floor = min((s for photo in hits for s, _ in photo), default=0.0)
    for q, photo in enumerate(hits):
        for sim, meta in photo:
            k = key(meta)
            if k not in metas or sim > metas[k][0]:
                metas[k] = (sim, meta)
            scores = best.setdefault(k, [floor] * len(hits))
            scores[q] = max(scores[q], sim)
    ranked = sorted(((float(np.mean(s)), k) for k, s in best.items()), reverse=True)
    return [(sim, metas[k][1]) for sim, k in ranked]


def product_of(meta: dict[str, Any]) -> str:
    return str(meta.get("spu") or meta["listing_id"])


def identity(model: IndexModel, neighbours: list[Neighbour]) -> float:
    """P(the top hit is the identical product), from its score and its lead over the next product."""
    if not neighbours:
        return 0.0
    top = neighbours[0].similarity
    runner_up = max((n.similarity for n in neighbours[1:]), default=0.0)
    return float(model.identity_probability(top, top - runner_up, neighbours[0].spu or neighbours[0].id))


def _key(photos: list[Photo]) -> tuple[str, ...]:
    return tuple(p.sha256 for p in photos)


