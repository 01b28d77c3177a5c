"""The catalog index: real listings in persistent Chroma collections, one record per image.

Vectors come from the project's image embedder and are passed raw; the collection is created with
the project's own (registered) embedding function so Chroma never reaches for its default one,
which would download a model.
"""

from __future__ import annotations

import contextlib
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
from ipl_tools.learn import IndexModel, Records, as_records
from ipl_tools.learn import fit as learn_fit
from ipl_tools.photos import resolve

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
log = logging.getLogger(__name__)

COLLECTION = "listings"
LEARNED = "learned"


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
    """A persistent catalog index at `directory`: the `listings` collection holds one raw vector per
    catalog photo; `learned` the same photos in the projection the index learned from its catalog
    (`ipl_tools.learn`), refitted by `fit()` whenever photos were added."""

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
        self.client = chromadb.PersistentClient(
            path=str(self.directory), settings=Settings(anonymized_telemetry=False)
        )
        self.embedder = embedder
        self.collection = self._collection(COLLECTION)
        self._model: IndexModel | None = None

    def _collection(self, name: str):
        return self.client.get_or_create_collection(
            name,
            embedding_function=embedding_function(self.embedder),  # type: ignore[arg-type]
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
        """Add listings not yet in the index (unreadable images are reported and skipped), then refit
        what the index learns from its catalog."""
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
        if report.added:
            self.fit()
        return report

    def _add(self, items: list[tuple[str, Photo, dict[str, Any]]], embed) -> None:
        vectors = embed([photo for _, photo, _ in items])  # (B, D)
        self.collection.add(
            ids=[i for i, _, _ in items],
            embeddings=vectors,
            metadatas=[{**meta, "image": photo.path} for _, photo, meta in items],
        )

    # --- what the index learned from its catalog -------------------------------------------------

    def records(self, page: int = 5000) -> Records:
        """Every catalog photo: raw vector, listing and metadata."""
        ids: list[str] = []
        vectors: list[np.ndarray] = []
        metas: list[dict[str, Any]] = []
        for offset in range(0, self.count(), page):
            got = self.collection.get(include=["embeddings", "metadatas"], limit=page, offset=offset)
            ids += got["ids"]
            vectors.append(np.asarray(got["embeddings"], dtype=np.float32))
            metas += [dict(m) for m in got["metadatas"]]
        return as_records(ids, np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32), metas)

    def fit(self) -> IndexModel:
        """Learn the projection and calibrations from the catalog and rebuild the `learned` collection."""
        records = self.records()
        if not len(records.vectors):
            raise IndexMissingError(f"the catalog index at {self.directory} is empty; add listings with `ipl index`")
        model = learn_fit(records)
        with contextlib.suppress(Exception):  # absent on the first fit
            self.client.delete_collection(LEARNED)
        learned = self._collection(LEARNED)
        projected = model.project(records.vectors)  # (N, d)
        ids = records.ids
        step = self.client.get_max_batch_size()
        for start in range(0, len(ids), step):
            learned.add(ids=ids[start : start + step], embeddings=projected[start : start + step],
                        metadatas=records.metas[start : start + step])
        model.save(self.directory)
        self._model = model
        return model

    def model(self) -> IndexModel:
        """The learned model, refitted first when the catalog changed since it was fitted."""
        if self._model is None or self._model.count != self.count():
            self._model = IndexModel.load(self.directory)
            if self._model is None or self._model.count != self.count():
                self._model = self.fit()
        return self._model

    def nearest(self, vectors: np.ndarray, n: int, learned: bool) -> list[list[tuple[float, dict[str, Any]]]]:
        """Per query vector, the n nearest catalog photos as (cosine similarity, metadata)."""
        if self.count() == 0:
            raise IndexMissingError(f"the catalog index at {self.directory} is empty; add listings with `ipl index`")
        dim = self.model().mean.shape[0]
        if vectors.shape[1] != dim:
            raise UserError(
                f"the index at {self.directory} holds {dim}-d vectors and the embedder gives {vectors.shape[1]}-d:"
                " it was built by another version; index the catalog again into a new folder"
            )
        if learned:
            vectors = self.model().project(vectors)
        collection = self._collection(LEARNED) if learned else self.collection
        result = collection.query(
            query_embeddings=vectors, n_results=min(n, self.count()), include=["metadatas", "distances"]
        )
        return [
            [(1.0 - float(d), dict(m)) for m, d in zip(metas, dists, strict=True)]
            for metas, dists in zip(result["metadatas"], result["distances"], strict=True)
        ]


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


def neighbour(lid: str, sim: float, meta: dict[str, Any]) -> Neighbour:
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
