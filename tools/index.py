"""The catalog index: real listings in a persistent Chroma collection, one record per image.

Vectors come from the project's image embedder and are passed raw; the collection is created with
the project's own (registered) embedding function so Chroma never reaches for its default one,
which would download a model.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ipl_graph.errors import IndexMissingError, PhotoError, UserError
from ipl_graph.policies import Limits
from ipl_graph.schemas import Neighbour, Photo
from ipl_tools.photos import resolve

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
log = logging.getLogger(__name__)

COLLECTION = "listings"


def read_listings(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a listings JSONL file, with image paths made absolute (relative to the file)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such listings file")
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{path}:{line_no}: not a JSON object") from None
            if not isinstance(row, dict) or "id" not in row:
                raise UserError(f"{path}:{line_no}: a listing needs at least an 'id'")
            row["images"] = [str((path.parent / p).resolve()) for p in row.get("images") or []]
            yield row


def _embedding_function():
    from chromadb.api.types import EmbeddingFunction, Embeddings, Images
    from chromadb.utils.embedding_functions import register_embedding_function

    @register_embedding_function
    class IPLImageEmbedding(EmbeddingFunction[Images]):
        """Embeds images (H, W, 3 uint8 arrays) with IPL's image embedder."""

        def __init__(self, embedder: str = "efficientnet-lite0") -> None:
            self.embedder = embedder

        def __call__(self, input: Images) -> Embeddings:
            from PIL import Image

            from ipl_graph import plugins

            model = plugins.get("embedder", self.embedder)
            return list(model.embed_images([Image.fromarray(np.asarray(a, dtype=np.uint8)) for a in input]))

        @staticmethod
        def name() -> str:
            return "ipl-image"

        def default_space(self):  # type: ignore[override]
            return "cosine"

        def get_config(self) -> dict[str, Any]:
            return {"embedder": self.embedder}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> IPLImageEmbedding:
            return IPLImageEmbedding(config.get("embedder", "efficientnet-lite0"))

    return IPLImageEmbedding


_EF_CLASS = None


def embedding_function(embedder: str):
    global _EF_CLASS
    if _EF_CLASS is None:
        _EF_CLASS = _embedding_function()
    return _EF_CLASS(embedder)


@dataclass
class IndexReport:
    added: int = 0
    skipped_existing: int = 0
    bad: list[str] = field(default_factory=list)


class Catalog:
    """A persistent catalog index at `directory`."""

    def __init__(self, directory: str | Path, embedder: str = "efficientnet-lite0", create: bool = False):
        import chromadb
        from chromadb.config import Settings

        self.directory = Path(directory)
        if not create and not (self.directory / "chroma.sqlite3").exists():
            raise IndexMissingError(
                f"no catalog index at {self.directory}; build one with `ipl index LISTINGS.jsonl --index "
                f"{self.directory}`"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(
            path=str(self.directory), settings=Settings(anonymized_telemetry=False)
        )
        self.collection = client.get_or_create_collection(
            COLLECTION,
            embedding_function=embedding_function(embedder),  # type: ignore[arg-type]
            configuration={"hnsw": {"space": "cosine"}},
        )

    def count(self) -> int:
        return self.collection.count()

    def existing(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            found.update(self.collection.get(ids=ids[start : start + 500], include=[])["ids"])
        return found

    def add_listings(
        self,
        rows: Iterable[dict[str, Any]],
        embed: Callable[[list[Photo]], np.ndarray],
        limits: Limits,
        batch: int = 64,
        progress: Callable[[int], None] = lambda n: None,
    ) -> IndexReport:
        """Add listings not yet in the index; unreadable images are reported and skipped."""
        report = IndexReport()
        rows = list(rows)
        image_ids = [f"{r['id']}#{i}" for r in rows for i in range(len(r["images"]))]
        have = self.existing(image_ids)
        pending: list[tuple[str, Photo, dict[str, Any]]] = []
        for row in rows:
            if not row["images"]:
                report.bad.append(f"{row['id']}: no images")
                progress(1)
                continue
            meta = _metadata(row)
            for i, ref in enumerate(row["images"]):
                image_id = f"{row['id']}#{i}"
                if image_id in have:
                    report.skipped_existing += 1
                    continue
                try:
                    pending.append((image_id, resolve(ref, limits), meta))
                except PhotoError as exc:
                    report.bad.append(f"{row['id']}: {exc}")
            progress(1)
            while len(pending) >= batch:
                self._add(pending[:batch], embed)
                report.added += batch
                del pending[:batch]
        if pending:
            self._add(pending, embed)
            report.added += len(pending)
        return report

    def _add(self, items: list[tuple[str, Photo, dict[str, Any]]], embed) -> None:
        vectors = embed([photo for _, photo, _ in items])  # (B, D)
        self.collection.add(
            ids=[i for i, _, _ in items],
            embeddings=vectors,
            metadatas=[{**meta, "image": photo.path} for _, photo, meta in items],
        )

    def query(self, vectors: np.ndarray, k: int) -> list[Neighbour]:
        """Listings nearest to all query photos: per listing, the mean over photos of its best similarity."""
        if self.count() == 0:
            raise IndexMissingError(f"the catalog index at {self.directory} is empty; add listings with `ipl index`")
        n = min(max(k * 3, k), self.count())
        result = self.collection.query(query_embeddings=vectors, n_results=n, include=["metadatas", "distances"])
        best: dict[str, list[float]] = {}
        metas: dict[str, dict[str, Any]] = {}
        floor = 1.0
        for q, (metadatas, distances) in enumerate(zip(result["metadatas"], result["distances"], strict=True)):
            for meta, distance in zip(metadatas, distances, strict=True):
                sim = 1.0 - float(distance)
                floor = min(floor, sim)
                lid = str(meta["listing_id"])
                metas[lid] = dict(meta)
                scores = best.setdefault(lid, [-1.0] * len(vectors))
                scores[q] = max(scores[q], sim)
        ranked = sorted(
            ((float(np.mean([s if s > -1 else floor for s in scores])), lid) for lid, scores in best.items()),
            reverse=True,
        )
        return [_neighbour(lid, sim, metas[lid]) for sim, lid in ranked[:k]]


def _metadata(row: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "listing_id": str(row["id"]),
        "category": row.get("category") or "",
        "category_path": json.dumps(row.get("category_path") or [], ensure_ascii=False),
        "title": row.get("title") or "",
        "description": (row.get("description") or "")[:1000],
        "attributes": json.dumps(row.get("attributes") or {}, ensure_ascii=False),
        "spu": row.get("spu") or "",
        "currency": row.get("currency") or "",
    }
    if isinstance(row.get("price"), int | float):
        meta["price"] = float(row["price"])
    return meta


def _neighbour(lid: str, sim: float, meta: dict[str, Any]) -> Neighbour:
    return Neighbour(
        id=lid,
        similarity=round(sim, 4),
        category=meta.get("category") or None,
        category_path=json.loads(meta.get("category_path") or "[]"),
        title=meta.get("title") or None,
        description=meta.get("description") or None,
        attributes=json.loads(meta.get("attributes") or "{}"),
        spu=meta.get("spu") or None,
        price=meta.get("price"),
        currency=meta.get("currency") or None,
    )
