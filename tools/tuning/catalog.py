"""What the catalog index says about a training row's photos: the category the catalog model gives
them (for the photo-text consistency rule) and the references a listing of them would get (for the
third instruction type). The graph's own pieces, called as the graph calls them: the product hits
(`search.aggregate`), the category vote blended with the probe and calibrated (`KnnVote`), the SPU
gate (`gate.trusted_of`). A row that is itself in the catalog is hidden from its own search, as a
new listing of it would be."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ipl_graph.backends import CategoryRequest
from ipl_graph.policies import Policy
from ipl_graph.schemas import Neighbour, Photo
from ipl_tools import trust
from ipl_tools.catalog.index import neighbour
from ipl_tools.catalog.searcher import CANDIDATES, ChromaSearcher, aggregate, identity, product_of
from ipl_tools.categorize import KnnVote
from ipl_tools.gate_matches import trusted_of
from ipl_tools.photos import resolve

TOP_K = 10
"""Product hits per row, as the graph's Context.top_k."""
BATCH = 32


@dataclass
class Look:
    """The catalog's view of one row's photos."""

    category: str | None
    confidence: float
    references: list[Neighbour] = field(default_factory=list)


def in_catalog(row: dict[str, Any]) -> bool:
    """Whether `ipl index` would have put the row in the catalog (its role is `catalog`)."""
    return (row.get("role") or "catalog") == "catalog"


class CatalogView:
    """Category and references of rows' photos from the index at `index_dir`."""

    def __init__(self, index_dir: str, policy: Policy, embedder: str = "efficientnet-lite0") -> None:
        self.searcher = ChromaSearcher(index_dir, embedder)
        self.model = self.searcher.model
        self.policy = policy

    def photos(self, row: dict[str, Any]) -> list[Photo]:
        """The row's photos, checked as the graph checks a seller's (PhotoError if one cannot be read)."""
        return [resolve(ref, self.policy.limits) for ref in row["images"]]

    def vectors(self, rows: list[dict[str, Any]], photos: list[list[Photo]]) -> list[np.ndarray]:
        """Per row, its photos' vectors (n, D): the index's own for a catalog photo it holds (as
        `ipl index` embedded it), else embedded now."""
        ids = [f"{row['id']}#{i}" if in_catalog(row) else f"\0{row['id']}#{i}"  # a query row may share an id
               for row, ps in zip(rows, photos, strict=True) for i in range(len(ps))]
        stored: dict[str, np.ndarray] = {}
        wanted = [i for i in ids if i[0] != "\0"]
        got: Any = self.searcher.catalog.collection.get(ids=wanted, include=["embeddings"]) if wanted else None
        for i, vector in zip(got["ids"], got["embeddings"], strict=True) if got else ():
            stored[i] = np.asarray(vector, dtype=np.float32)
        missing = [(i, p) for i, p in zip(ids, (p for ps in photos for p in ps), strict=True) if i not in stored]
        if missing:
            embedded = self.searcher.embedder.embed([p for _, p in missing])  # (M, D)
            stored.update({i: v for (i, _), v in zip(missing, embedded, strict=True)})
        out, start = [], 0
        for ps in photos:
            out.append(np.stack([stored[ids[start + i]] for i in range(len(ps))]))
            start += len(ps)
        return out

    def look(self, rows: list[dict[str, Any]], photos: list[list[Photo]],
             progress: Callable[[int], None] = lambda n: None) -> list[Look]:
        """The catalog's category and references for each row (rows with photos only)."""
        looks: list[Look] = []
        for start in range(0, len(rows), BATCH):
            part, part_photos = rows[start : start + BATCH], photos[start : start + BATCH]
            vectors = self.vectors(part, part_photos)
            hits = self.searcher.catalog.nearest(np.concatenate(vectors), CANDIDATES + 1, learned=True)
            at = 0
            for row, v in zip(part, vectors, strict=True):
                looks.append(self._look(row, v, hits[at : at + len(v)]))
                at += len(v)
            progress(len(part))
        return looks

    def _look(self, row: dict[str, Any], vectors: np.ndarray, hits: list[list[tuple[float, dict]]]) -> Look:
        own = str(row["id"]) if in_catalog(row) else None
        hits = [[(s, m) for s, m in photo if m.get("listing_id") != own] for photo in hits]
        neighbours = [neighbour(m["listing_id"], s, m) for s, m in aggregate(hits, product_of)[:TOP_K]]
        model = self.model
        prior = model.distribution("category", vectors) if model.blends_category else None
        guess = KnnVote().categorize(CategoryRequest(neighbours=neighbours, min_confidence=0.0,
                                                     calibrate=model.category_confidence, prior=prior,
                                                     prior_weight=model.category_probe_weight,
                                                     photos=model.category_photos))
        return Look(guess.name or guess.runner_up, guess.confidence, self._references(row, neighbours))

    def _references(self, row: dict[str, Any], neighbours: list[Neighbour]) -> list[Neighbour]:
        """The identical product's other listings: by the row's own `spu` where it has one (the data
        says what is identical), else those the SPU gate lets through, as at listing time; a hit whose
        text breaks a moderation rule is no reference."""
        t = self.policy.thresholds
        if row.get("spu"):
            same = [n for n in neighbours if n.spu == row["spu"]][: t.max_references]
        else:
            same = trusted_of(neighbours, identity(self.model, neighbours), t.spu_gate, t.max_references)
        return [n for n in same if not trust.neighbour_problem(n, self.policy)]
