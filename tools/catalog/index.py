"""The catalog index: real listings in persistent Chroma collections, one record per image.

Vectors come from the project's image embedder and are passed raw; the collection is created with
the project's own (registered) embedding function so Chroma never reaches for its default one,
which would download a model.

One writer at a time (`ipl index`) holds a file lock in the index folder. It adds rows, then refits
what the index learns from its catalog aside: a new `learned-<n>` collection, then the model file
that names it, swapped in with os.replace; the collection it replaced, and segment folders no
collection uses, go after the swap. Readers (`ipl list`, the server) never fit: they load the model
file, query the collection it names, and read the file again once if a refit swapped that
collection away meanwhile. A model that does not match the catalog (a fit that was killed) is an
error that names `ipl index`, which finishes it.

`--index http://HOST:PORT[?collection=...]` puts the same collections on a Chroma server, with the
model and the write lock beside them there (`ipl_tools.catalog.chroma_server`); the folder is the default.

Past `FIT_SAMPLE` photos the model is fitted on a seeded sample of them and every photo is projected
page by page, so no process holds the whole catalog's vectors; `ipl index --ray` embeds the photos
on a Ray cluster (`ipl_tools.catalog.ray_index`) and adds them here, as the one writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import sqlite3
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ipl_graph.errors import IndexDamagedError, IndexMissingError, PhotoError, UserError
from ipl_graph.schemas import Neighbour, Photo
from ipl_graph.taming import chromadb_imports
from ipl_tools.catalog.chroma_server import ServerIndex, ServerModelStore, connect, is_url
from ipl_tools.catalog.config import LEARN
from ipl_tools.catalog.fit import Census, Records, as_records, count_text, photos_per, revouched
from ipl_tools.catalog.fit import fit as learn_fit
from ipl_tools.catalog.model import MODEL_FILE, PHOTO_KINDS, SELLER, SELLER_PHOTOS, STUDIO, IndexModel
from ipl_tools.catalog.text import attributes_of
from ipl_tools.photos import looks_studio, resolve

if TYPE_CHECKING:
    from ipl_graph.policies import Policy
    from ipl_tools.catalog.ray_index import RayConfig

log = logging.getLogger(__name__)

COLLECTION = "listings"
VIEWS = "views"
"""The collection of the views of rare products' sellers' photos (`embedding.VIEW_CROPS`): read by
the fit alone, never searched."""
LEARNED = "learned"
"""Prefix of the collections in a fit's projection: `learned-<n>`, a new n per fit (plain `learned`
in indexes built before)."""
LOCK_FILE = "ipl.lock"
MODEL_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile)
"""What loading a damaged model file raises."""
FIT_SAMPLE = 100_000
"""Catalog photos the learned model is fitted on, at most: a seeded sample beyond that (~0.7 GB of
1776-d vectors; the fit itself already draws at most 20k for the projection and 4k for the
calibrations, so past this the probes, colour table and IDF see a sample, not the catalog)."""
SYNC_THRESHOLD = 1000
"""Chroma's default `hnsw.sync_threshold`: records that arrive before it saves a collection's graph."""
EF_SEARCH = 400
"""Candidates the HNSW graph keeps while it searches (Chroma's default 100, raised to the n asked
where that is more). A product known by one photo lies apart from the others in the learned space,
and the graph's greedy search passed it by: on the fashion long-tail catalog 8 of 500 query photos
missed their exact nearest catalog photo in the 200 returned (Free Gifts, Bra: categories of one
photo); at 400, 1."""
SEGMENT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""Name of a folder where Chroma keeps a segment (its id)."""


PendingPhoto = tuple[str, str, dict[str, Any], str, bool]
"""A photo on its way into the index: (image id, photo reference, metadata, row id, of a rare product)."""


def build_catalog(
    location: str | Path | Catalog, rows: Iterable[dict[str, Any]], *, embedder: str = "efficientnet-lite0",
    policy: Policy | None = None, progress: Callable[[int], None] = lambda n: None, ray: RayConfig | None = None,
    fit_sample: int = FIT_SAMPLE, refit: bool = False,
) -> tuple[Catalog, IndexReport]:
    """The one way to build (or add to) a catalog index: rows embedded by `embedder` (on a Ray
    cluster with `ray`) and checked against `policy` (default: the default policy), then the
    learned model refitted (`Catalog.add_listings`). `location` may be a catalog already opened."""
    from ipl_graph import plugins

    catalog = location if isinstance(location, Catalog) else Catalog(location, embedder, create=True,
                                                                       fit_sample=fit_sample)
    # with ray, each worker loads its own embedder
    embedding = None if ray else catalog_embedding(plugins.get("embedder", embedder))
    return catalog, catalog.add_listings(rows, embedding.embed if embedding else None, policy, progress=progress,
                                         ray=ray, refit=refit, workers=embedding.workers if embedding else 1,
                                         views=embedding.views if embedding else None)


def spans(n: int, step: int, last: int) -> list[tuple[int, int]]:
    """[start, end) spans of n records, at most `step` long, the last one at least `last` long where
    n allows (the one before it shortened for it)."""
    cuts = [(start, min(start + step, n)) for start in range(0, n, step)]
    if len(cuts) > 1 and n >= last and cuts[-1][1] - cuts[-1][0] < last:
        middle = max(cuts[-2][0] + 1, n - last)
        cuts[-2:] = [(cuts[-2][0], middle), (middle, n)]
    return cuts


@dataclass
class CatalogEmbedding:
    """How `add_listings` embeds catalog photos."""

    embed: Callable[[list[Photo]], np.ndarray]
    """(N, D) vectors of photos."""
    views: Callable[[list[Photo]], np.ndarray] | None
    """(N, V, D) vectors of each photo's views (`embedding.VIEW_CROPS`); None: the embedder makes none."""
    workers: int
    """Batches run side by side."""


def catalog_embedding(embedder: Any) -> CatalogEmbedding:
    """Indexing with `embedder`: its `embed_catalog` (and `embed_catalog_views`) on one thread per core
    where it has one (safe to call so), else `embed` (and `embed_views` where it has it) one batch at
    a time."""
    concurrent = getattr(embedder, "embed_catalog", None)
    if concurrent:
        return CatalogEmbedding(concurrent, getattr(embedder, "embed_catalog_views", None), catalog_workers())
    return CatalogEmbedding(embedder.embed, getattr(embedder, "embed_views", None), 1)


def catalog_workers() -> int:
    """The cores this process may use, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def read_listings(path: str | Path, problems: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a listings JSONL file, with image paths made absolute (relative to the file). A line
    that holds no listing, or repeats the id of an earlier line of its role, is skipped and told as
    'FILE:LINE: why' to `problems` (logged when there is none); the good rows are kept. (A dataset may
    number its query rows like its catalog rows.)"""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such listings file")
    seen: dict[tuple[str, str], int] = {}  # (role, id): line
    with path.open("rb") as f:
        for line_no, raw in enumerate(f, 1):
            row, why = _parse_row(raw, "utf-8-sig" if line_no == 1 else "utf-8")
            if row is None and why is None:
                continue
            if row is not None and (first := seen.get(_key(row))) is not None:
                why = f"id {row['id']!r} already on line {first}"
                row = None
            if row is None:
                skipped = f"{path}:{line_no}: {why}"
                if problems is None:
                    log.warning("skipped %s", skipped)
                else:
                    problems.append(skipped)
                continue
            seen[_key(row)] = line_no
            row["images"] = [str((path.parent / p).resolve()) for p in row.get("images") or []]
            yield row


def _key(row: dict[str, Any]) -> tuple[str, str]:
    return str(row.get("role") or "catalog"), str(row["id"])


def _parse_row(raw: bytes, encoding: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the listing on a line, None), (None, why it is none), or (None, None) for a blank line."""
    try:
        line = raw.decode(encoding)
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    if not line.strip():
        return None, None
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None, "not a JSON object"
    if not isinstance(row, dict) or not isinstance(row.get("id"), str | int) or not str(row["id"]).strip():
        return None, "a listing needs at least an 'id'"
    images = row.get("images") or []
    if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
        return None, "'images' must be a list of paths"
    return row, None


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


class CollectionSwappedError(Exception):
    """A query met a learned collection that a refit in another process was dropping."""


@dataclass
class IndexReport:
    added: int = 0
    skipped_existing: int = 0
    bad: list[str] = field(default_factory=list)
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    """(row id, why) of rows the trust boundary kept out of the index."""
    fitted: bool = False
    """Whether the learned model was refitted (rows were added, or an earlier fit had not finished)."""
    extended: bool = False
    """Whether the rows added were projected by the model as it was, not refitted (`Catalog._extend`)."""
    views: int = 0
    """Sellers' photos of rare products also embedded as views (`LearnConfig.view_max_photos`)."""


class Catalog:
    """A persistent catalog index at `directory`: the `listings` collection holds one raw vector per
    catalog photo; a `learned-<n>` collection the same photos in the projection the index learned
    from its catalog (`ipl_tools.catalog.fit`), named by the model file. Opened with `create=False` it is
    only read: the model is never fitted, no collection is created. `directory` may be a Chroma
    server's URL instead (`ipl_tools.catalog.chroma_server`)."""

    def __init__(self, directory: str | Path, embedder: str = "efficientnet-lite0", create: bool = False,
                 fit_sample: int = FIT_SAMPLE):
        self.embedder = embedder
        self.fit_sample = fit_sample
        self.server: ServerModelStore | None = None
        self._model: IndexModel | None = None
        self._model_stamp: Any = None
        self._written: list[str] = []  # ids `write` added in this `add_listings`
        self._location = str(directory) if is_url(directory) else str(Path(directory))
        if is_url(directory):
            self._open_server(ServerIndex.parse(str(directory)), create)
            return
        self.names = (COLLECTION, LEARNED, VIEWS)
        self._open_folder(Path(directory), create)

    @property
    def location(self) -> str:
        """The folder or the server's URL, as the user gave it."""
        return self._location

    def _open_server(self, where: ServerIndex, create: bool) -> None:
        from chromadb.errors import NotFoundError

        self.names = (where.collection, where.learned, where.views)
        self.client = connect(where, create)
        with self._reading():
            self.collection = self._collection(where.collection) if create else self._existing(where.collection)
            try:
                models = self._collection(where.model) if create else self._existing(where.model)
            except NotFoundError:
                raise IndexDamagedError(f"the index at {where.url} has no learned model: run `ipl index"
                                        f" LISTINGS.jsonl --index {where.url}` to fit it") from None
        self.server = ServerModelStore(where, models)

    def _open_folder(self, directory: Path, create: bool) -> None:
        with chromadb_imports():  # offline, without seconds of an unused grammar (ipl_graph.taming)
            import chromadb
        from chromadb.api.shared_system_client import SharedSystemClient
        from chromadb.config import Settings
        from chromadb.errors import ChromaError

        self.directory = directory
        database = self.directory / "chroma.sqlite3"
        if not create and not database.exists():
            raise IndexMissingError(
                f"no catalog index at {self.directory}; build one with `ipl index LISTINGS.jsonl --index "
                f"{self.directory}`"
            )
        if database.exists() and database.stat().st_size == 0:
            raise IndexDamagedError(self._damaged("chroma.sqlite3 is empty"))
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._reading():
            try:
                self.client = chromadb.PersistentClient(
                    path=str(self.directory), settings=Settings(anonymized_telemetry=False)
                )
            except ChromaError:
                # chromadb 1.5 keeps a system that failed to start cached under its path, and every later
                # client of that path then fails with an AttributeError: forget it, so a repaired index opens
                SharedSystemClient._identifier_to_system.pop(str(self.directory), None)
                raise
            self.collection = self._collection(COLLECTION) if create else self._existing(COLLECTION)

    def _collection(self, name: str):
        return self.client.get_or_create_collection(
            name,
            embedding_function=embedding_function(self.embedder),  # type: ignore[arg-type]
            configuration={"hnsw": {"space": "cosine", "ef_search": EF_SEARCH}},
        )

    def _existing(self, name: str):
        from chromadb.errors import NotFoundError

        try:
            return self.client.get_collection(name, embedding_function=embedding_function(self.embedder))  # type: ignore[arg-type]
        except NotFoundError:
            if name == self.names[0]:
                raise IndexMissingError(
                    f"the catalog index at {self.location} is empty; add listings with `ipl index`"
                ) from None
            raise

    def _damaged(self, why: str) -> str:
        if is_url(self.location):
            return (f"the catalog index at {self.location} cannot be read ({why}): is the Chroma server up? Else delete"
                    f" its collections and build it again with `ipl index LISTINGS.jsonl --index {self.location}`")
        return (
            f"the catalog index at {self.directory} cannot be read ({why}): move it away and build it again with"
            f" `ipl index LISTINGS.jsonl --index {self.directory}`"
        )

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Chroma's errors on a damaged database, or a server that stopped answering, as one line that
        names the fix."""
        import httpx
        from chromadb.errors import ChromaError, NotFoundError

        try:
            yield
        except NotFoundError:
            raise
        except (ChromaError, httpx.TransportError) as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise IndexDamagedError(self._damaged(why)) from None

    def count(self) -> int:
        with self._reading():
            return self.collection.count()

    def existing(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        with self._reading():
            for start in range(0, len(ids), 500):
                found.update(self.collection.get(ids=ids[start : start + 500], include=[])["ids"])
        return found

    # --- writing: one writer at a time, under the folder's lock ----------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The index folder's write lock (released by the system if the writer dies), or the server's lease."""
        if self.server:
            with self._reading(), self.server.locked():
                yield
            return
        with (self.directory / LOCK_FILE).open("a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def _writer_active(self) -> bool:
        """Whether a writer holds the folder's lock now (tested without writing anything)."""
        if self.server:
            with self._reading():
                return self.server.writer_active()
        try:
            fd = os.open(self.directory / LOCK_FILE, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def add_listings(
        self,
        rows: Iterable[dict[str, Any]],
        embed: Callable[[list[Photo]], np.ndarray] | None,
        policy: Policy | None = None,
        batch: int = 64,
        progress: Callable[[int], None] = lambda n: None,
        ray: RayConfig | None = None,
        refit: bool = False,
        workers: int = 1,
        views: Callable[[list[Photo]], np.ndarray] | None = None,
    ) -> IndexReport:
        """Add listings not yet in the index (rows the trust boundary refuses are quarantined,
        unreadable images reported and skipped), then refit what the index learns from its catalog
        when rows were added or an earlier fit did not finish; a few rows added to a fitted catalog
        are projected by its model instead (`_extend`), unless `refit`. `policy` defaults to the
        default one. Batches are read and embedded by `workers` threads side by side (`embed` must
        be safe to call so: `catalog_embedding`). With `ray`, photos are read and embedded on a Ray
        cluster by `self.embedder` (`embed` unused). Sellers' photos of rare products (`rare_classes`,
        `viewed_kind`) are also embedded as views by `views` (the Ray workers' embedder's
        `embed_views`), where given."""
        from ipl_graph.policies import load_policy
        from ipl_tools.trust import row_problem

        policy = policy or load_policy()
        report = IndexReport()
        kept: dict[str, dict[str, Any]] = {}
        for row in rows:
            if str(row["id"]) in kept:
                report.bad.append(f"{row['id']}: the same id twice")
            elif reason := row_problem(row, policy):
                report.quarantined.append((str(row["id"]), reason))
            else:
                kept[str(row["id"])] = row
                continue
            progress(1)
        self._written = []
        with self._locked():
            if ray is not None:
                from ipl_tools.catalog.ray_index import add_new

                add_new(self, list(kept.values()), policy, ray, progress, report)
            elif embed is None:
                raise TypeError("add_listings needs `embed` without `ray`")
            else:
                self._add_new(list(kept.values()), embed, policy, batch, progress, report, workers, views)
            if report.added and not refit and self._extend(self._written):
                report.extended = True
            elif self.count() and (report.added or self._stale()):
                self._refit()
                report.fitted = True
        return report

    def new_images(self, rows: list[dict[str, Any]], report: IndexReport, progress: Callable[[int], None]) -> Iterator[
        tuple[dict[str, Any], list[tuple[str, str]], dict[str, Any], bool]
    ]:
        """Per row with images: (row, [(image id, photo reference)] not yet indexed, its metadata,
        whether its product is rare: `rare_classes`). Rows without images are reported and counted as
        done; photos already in the index are counted."""
        image_ids = [f"{r['id']}#{i}" for r in rows for i in range(len(r["images"]))]
        have = self.existing(image_ids)
        new = {str(r["id"]): [(f"{r['id']}#{i}", ref) for i, ref in enumerate(r["images"])
                              if f"{r['id']}#{i}" not in have] for r in rows}
        rare = self.rare_classes([(r, len(new[str(r["id"])])) for r in rows])
        for row in rows:
            if not row["images"]:
                report.bad.append(f"{row['id']}: no images")
                progress(1)
                continue
            report.skipped_existing += len(row["images"]) - len(new[str(row["id"])])
            yield row, new[str(row["id"])], _metadata(row), view_class(row) in rare

    def rare_classes(self, added: list[tuple[dict[str, Any], int]]) -> set[tuple[str, str]]:
        """The classes (`view_class`) with `LearnConfig.view_max_photos` photos or fewer once the
        rows `added` (row, photos of it new to the index) are in: what the saved model counted, plus these."""
        try:
            model = self._load_model()
        except MODEL_ERRORS:
            model = None
        counts: dict[tuple[str, str], int] = {}
        if model is not None:
            counts |= {("product", name): n for name, n in model.photos_per("product").items()}
        for row, n in added:
            if (key := view_class(row)) is not None:
                counts[key] = counts.get(key, 0) + n
        return {key for key, n in counts.items() if n <= LEARN.view_max_photos}

    def _add_new(self, rows: list[dict[str, Any]], embed, policy: Policy, batch: int, progress, report,
                 workers: int = 1, views: Callable[[list[Photo]], np.ndarray] | None = None) -> None:
        """Photos of `rows` read, checked and embedded `batch` at a time, by `workers` threads side by
        side (at most `workers` + 1 batches in flight), and written here, in the rows' order; sellers'
        photos of rare products also embedded as views by `views`, where given."""
        def read_and_embed(items: list[PendingPhoto]) -> tuple[list[str], Any, list, list, list[str], Any]:
            kept: list[tuple[str, Photo, dict[str, Any], bool]] = []
            bad: list[str] = []
            for image_id, ref, meta, row_id, rare in items:
                try:
                    kept.append((image_id, resolve(ref, policy.limits), meta, rare))
                except PhotoError as exc:
                    bad.append(f"{row_id}: {exc}")
            vectors = embed([photo for _, photo, _, _ in kept]) if kept else None  # (B, D)
            metas = [{**meta, "image": photo.path, "photo": photo_kind(meta, photo)} for _, photo, meta, _ in kept]
            of_rare = [(i, photo) for (i, photo, _, r), m in zip(kept, metas, strict=True)
                       if r and viewed_kind(m["photo"])] if views else []
            viewed = views([photo for _, photo in of_rare]) if of_rare and views else None  # (R, V, D)
            return [i for i, _, _, _ in kept], vectors, metas, bad, [i for i, _ in of_rare], viewed

        def write_oldest() -> None:
            ids, vectors, metas, bad, rare_ids, viewed = running.popleft().result()
            report.bad.extend(bad)
            if ids:
                write(ids, vectors, metas)
                report.added += len(ids)
            if rare_ids:
                self.write_views(rare_ids, viewed)
                report.views += len(rare_ids)

        running: deque[Future] = deque()
        pending: list[PendingPhoto] = []
        with self.held_writes() as write, ThreadPoolExecutor(workers, thread_name_prefix="ipl-embed") as pool:

            def submit(items: list[PendingPhoto]) -> None:
                running.append(pool.submit(read_and_embed, items))
                while len(running) > workers:
                    write_oldest()

            for row, new, meta, rare in self.new_images(rows, report, progress):
                pending += [(image_id, ref, meta, str(row["id"]), rare) for image_id, ref in new]
                progress(1)
                while len(pending) >= batch:
                    submit(pending[:batch])
                    del pending[:batch]
            if pending:
                submit(pending)
            while running:
                write_oldest()

    @contextlib.contextmanager
    def held_writes(self) -> Iterator[Callable[[list[str], np.ndarray, list[dict[str, Any]]], None]]:
        """`write`, with the photos held and written `_write_step()` at a time, the last write (at
        the end of the block) `_write_step()` to twice that. Chroma saves a collection's HNSW graph
        once that many records arrived since its last save; what came after is only in its log, and
        every process that reads the collection first puts it into the graph again (673 of the
        grocery catalog's 2,721 photos: ~0.13 s of each cold `ipl list`). So the graph is saved with
        the last photo whenever that many were added."""
        step = self._write_step()
        ids: list[str] = []
        vectors: list[np.ndarray] = []
        metas: list[dict[str, Any]] = []

        def write(n: int) -> None:
            held = np.concatenate(vectors)
            self.write(ids[:n], held[:n], metas[:n])
            del ids[:n], metas[:n]
            vectors[:] = [held[n:]]

        def hold(new_ids: list[str], new_vectors: np.ndarray, new_metas: list[dict[str, Any]]) -> None:
            ids.extend(new_ids)
            vectors.append(new_vectors)
            metas.extend(new_metas)
            while len(ids) >= 2 * step:
                write(step)

        try:
            yield hold
        finally:  # what was embedded is kept, even when a later batch failed
            if ids:
                write(len(ids))

    def _write_step(self) -> int:
        """Records written to a collection at a time: its `hnsw.sync_threshold` (see `_add_new`)."""
        with self._reading():
            hnsw = self.collection.configuration.get("hnsw") or {}
            return max(1, min(int(hnsw.get("sync_threshold") or SYNC_THRESHOLD), self.client.get_max_batch_size() // 2))

    def write(self, ids: list[str], vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        """Add embedded photos (metadata: the listing's and the photo's `image` path); the caller holds the lock."""
        with self._reading():
            self.collection.add(ids=ids, embeddings=vectors, metadatas=metas)  # type: ignore[arg-type]
        self._written.extend(ids)

    def write_views(self, sources: list[str], vectors: np.ndarray) -> None:
        """Add the views (R, V, D) of the photos `sources` (their ids) to the views collection, each
        as `<photo id>@<crop>` with its photo's id as `source`; the caller holds the lock."""
        from ipl_tools.catalog.embedding import VIEW_CROPS

        crops = [f"{share:g}" for share in VIEW_CROPS][: vectors.shape[1]]
        ids = [f"{source}@{crop}" for source in sources for crop in crops]
        with self._reading():
            self._collection(self.names[2]).add(ids=ids, embeddings=vectors.reshape(len(ids), -1),  # type: ignore[arg-type]
                                                metadatas=[{"source": s} for s in sources for _ in crops])

    def views_of(self, ids: list[str], page: int = 5000) -> tuple[np.ndarray, np.ndarray]:
        """(vectors (V, D), index into `ids` of each one's photo): the views of the photos `ids`
        (none where the index has no views collection, one built before views were made)."""
        from chromadb.errors import NotFoundError

        where = {image_id: n for n, image_id in enumerate(ids)}
        vectors: list[np.ndarray] = []
        sources: list[int] = []
        with self._reading():
            try:
                views = self._existing(self.names[2])
            except NotFoundError:
                return np.zeros((0, 0), np.float32), np.zeros(0, int)
            for offset in range(0, views.count(), page):
                got = views.get(include=["embeddings", "metadatas"], limit=page, offset=offset)
                keep = [n for n, m in enumerate(got["metadatas"] or []) if str(m.get("source")) in where]
                if keep:
                    vectors.append(np.asarray(got["embeddings"], dtype=np.float32)[keep])
                    sources += [where[str(got["metadatas"][n]["source"])] for n in keep]
        if not vectors:
            return np.zeros((0, 0), np.float32), np.zeros(0, int)
        return np.concatenate(vectors), np.array(sources, dtype=int)

    def _extend(self, ids: list[str]) -> bool:
        """Project the photos `ids` (just added) by the saved model into its learned collection, and
        count them in it, instead of refitting: where the catalog has grown by no more than
        `LEARN.refit_growth` since the model's last full fit and they bring no category it lacks.
        The probes and calibrations stay those of the fit (the new photos are found, voted and
        extracted from, not learned from) until a later `ipl index` passes the growth and refits.
        Whether it did; the caller holds the lock."""
        try:
            model = self._load_model()
        except MODEL_ERRORS:
            return False
        count = self.count()
        fitted = int(model.report.get("fitted_count", 0)) if model else 0
        if model is None or count > fitted * (1 + LEARN.refit_growth) or model.collection not in self._learned_names():
            return False
        with self._reading():
            rows = self.collection.get(ids=ids, include=["embeddings", "metadatas"])
        known = model.category_photos
        metas = [dict(m) for m in rows["metadatas"] or []]
        if any(m.get("category") and m["category"] not in known for m in metas):
            return False  # a category the model never saw: the probes and votes must learn it
        vectors = np.asarray(rows["embeddings"], dtype=np.float32)
        with self._reading():
            learned = self._collection(model.collection)
            step = self.client.get_max_batch_size()
        self._project_into(learned, model, rows["ids"], vectors, metas, step)
        model.count = count
        records = as_records(rows["ids"], vectors, metas)
        revouched(model.report, records)  # before the counts below: which classes are new
        count_text(model, metas)
        per = model.report.setdefault("photos_per", {})
        for kind, added in photos_per(records).items():
            counts = per.setdefault(kind, {})
            for name, n in added.items():
                counts[name] = counts.get(name, 0) + n
        self._save(model)
        self._model, self._model_stamp = model, self._stamp()
        return True

    def _project_into(self, learned: Any, model: IndexModel, ids: list[str], vectors: np.ndarray,
                      metas: list[dict[str, Any]], step: int) -> None:
        """Add photos to a learned collection, projected by `model`, `step` at a time, the last write
        made `_write_step()` or more where there are that many (so Chroma saves the graph with it)."""
        projected = model.project(vectors)  # (B, d)
        with self._reading():
            for start, end in spans(len(ids), step, self._write_step()):
                learned.add(ids=ids[start:end], embeddings=projected[start:end],
                            metadatas=metas[start:end])  # type: ignore[arg-type]

    def _save(self, model: IndexModel) -> None:
        """Save the model where readers look for it: from here on they read its collection."""
        if self.server:
            with self._reading():
                self.server.save(model)
        else:
            model.save(self.directory)

    def _stale(self) -> bool:
        """Whether the saved model is missing, unreadable, of another format, fitted on another
        catalog (a fit that did not finish) or without its collection."""
        try:
            model = self._load_model()
        except MODEL_ERRORS:
            return True
        return model is None or model.count != self.count() or model.collection not in self._learned_names()

    def _learned_names(self) -> list[str]:
        with self._reading():
            names = [c.name for c in self.client.list_collections()]
        prefix = re.escape(self.names[1])
        return [n for n in names if re.fullmatch(rf"{prefix}-\d+", n) or (n == LEARNED and not self.server)]

    def _load_model(self) -> IndexModel | None:
        if self.server:
            with self._reading():
                return self.server.load()
        return IndexModel.load(self.directory)

    # --- what the index learned from its catalog -------------------------------------------------

    def records(self, page: int = 5000, limit: int | None = None, seed: int = 0) -> Records:
        """Every catalog photo (raw vector, listing and metadata) in the order they were added; past
        `limit` photos, a seeded sample of `limit` of them, in that order too."""
        count = self.count()
        if limit is None or count <= limit:
            ids: list[str] = []
            vectors: list[np.ndarray] = []
            metas: list[dict[str, Any]] = []
            for got_ids, got_vectors, got_metas in self.pages(page):
                ids += got_ids
                vectors.append(got_vectors)
                metas += got_metas
            return as_records(ids, np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32), metas)
        every = [i for got in self._paged([], page) for i in got["ids"]]
        chosen = [every[i] for i in np.sort(np.random.default_rng(seed).choice(len(every), limit, replace=False))]
        del every
        out = np.zeros((len(chosen), 0), np.float32)
        metas = [{} for _ in chosen]
        where = {image_id: n for n, image_id in enumerate(chosen)}
        with self._reading():
            for start in range(0, len(chosen), page):
                got = self.collection.get(ids=chosen[start : start + page], include=["embeddings", "metadatas"])
                got_vectors = np.asarray(got["embeddings"], dtype=np.float32)  # (B, D)
                if not out.shape[1]:
                    out = np.zeros((len(chosen), got_vectors.shape[1]), np.float32)
                rows = [where[i] for i in got["ids"]]  # Chroma answers in its own order
                out[rows] = got_vectors
                for n, m in zip(rows, got["metadatas"], strict=True):
                    metas[n] = dict(m)
        return as_records(chosen, out, metas)

    def metadatas(self, page: int = 5000) -> Iterator[list[dict[str, Any]]]:
        """The catalog rows' metadata, `page` photos at a time (no vectors: what a census reads)."""
        for got in self._paged(["metadatas"], page):
            yield [dict(m) for m in got["metadatas"]]

    def pages(self, page: int = 5000) -> Iterator[tuple[list[str], np.ndarray, list[dict[str, Any]]]]:
        """The catalog photos, `page` at a time in the order they were added: (ids, raw vectors (B, D), metadata)."""
        for got in self._paged(["embeddings", "metadatas"], page):
            yield got["ids"], np.asarray(got["embeddings"], dtype=np.float32), [dict(m) for m in got["metadatas"]]

    def _paged(self, include: list[str], page: int) -> Iterator[Any]:
        """Chroma's answers for the catalog photos, `page` at a time in the order they were added,
        with what `include` names (the ids always)."""
        for offset in range(0, self.count(), page):
            with self._reading():
                got = self.collection.get(include=include, limit=page, offset=offset)
            yield got

    def fit(self) -> IndexModel:
        """Learn the projection and calibrations from the catalog, under the folder's write lock."""
        with self._locked():
            return self._refit()

    def _refit(self) -> IndexModel:
        """Fit, fill a new `learned-<n>` collection, swap the model file that names it in, then drop
        the collections and segment folders it replaced. The caller holds the lock."""
        records = self.records(limit=self.fit_sample)
        if not len(records.vectors):
            raise IndexMissingError(f"the catalog index at {self.location} is empty; add listings with `ipl index`")
        records.views, records.view_of = self.views_of(records.ids)
        count = self.count()
        sampled = len(records.ids) < count
        census = Census()
        for metas in self.metadatas() if sampled else [records.metas]:  # what every row says, not the sample
            census.add(metas)
        model = learn_fit(records, census=census)
        model.report["fitted_count"] = count  # photos at this full fit: `_extend` measures growth from it
        if sampled:  # fitted on a sample: the model still describes the whole catalog
            model.count = count
            model.report["fit_sample"] = len(records.ids)
        before = self._learned_names()
        fits = (int(n.rsplit("-", 1)[1]) for n in before if n != LEARNED)
        model.collection = f"{self.names[1]}-{1 + max(fits, default=0)}"
        with self._reading():
            learned = self._collection(model.collection)
            step = self.client.get_max_batch_size()
        pages = self.pages(step) if sampled else [(records.ids, records.vectors, records.metas)]
        del records
        for ids, vectors, metas in pages:
            self._project_into(learned, model, ids, vectors, metas, step)
        self._save(model)  # the swap: from here on readers go to the new collection
        with self._reading():
            for name in before:
                self.client.delete_collection(name)
        if not self.server:  # the server keeps its own disk
            self._remove_orphan_segments()
        self._model, self._model_stamp = model, self._stamp()
        return model

    def _remove_orphan_segments(self) -> None:
        """Remove segment folders no collection uses (Chroma's delete_collection leaves them on disk)."""
        database = f"file:{self.directory / 'chroma.sqlite3'}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(database, uri=True)) as db:
                live = {str(row[0]) for row in db.execute("SELECT id FROM segments")}
        except sqlite3.Error as exc:  # another Chroma schema: leave the folders be
            log.warning("segment folders in %s left as they are: %s", self.directory, exc)
            return
        for folder in self.directory.iterdir():
            if folder.is_dir() and SEGMENT.fullmatch(folder.name) and folder.name not in live:
                shutil.rmtree(folder, ignore_errors=True)

    # --- reading ---------------------------------------------------------------------------------

    def _stamp(self) -> Any:
        if self.server:
            with self._reading():
                return self.server.stamp()
        try:
            st = (self.directory / MODEL_FILE).stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def model(self) -> IndexModel:
        """The learned model the last `ipl index` saved, read again when a refit replaced it; never
        fitted here."""
        stamp = self._stamp()
        if self._model is None or stamp != self._model_stamp:
            self._model, self._model_stamp = self._read_model(), stamp
        return self._model

    def _read_model(self) -> IndexModel:
        path: Any = f"{self.location} ({self.server.where.model})" if self.server else self.directory / MODEL_FILE
        fix = f"`ipl index LISTINGS.jsonl --index {self.location}`"
        try:
            model = self._load_model()
        except MODEL_ERRORS as exc:
            raise IndexDamagedError(
                f"the learned model {path} cannot be read ({type(exc).__name__}): run {fix} to fit it again"
            ) from None
        if model is None and not self.server and path.exists():
            raise IndexDamagedError(f"the learned model {path} was saved by another version: run {fix} to fit it again")
        if model is None:
            raise IndexDamagedError(
                f"the index at {self.location} has no learned model (an `ipl index` that did not finish): run {fix}"
                " to finish it"
            )
        count = self.count()
        if model.count != count and not self._writer_active():
            raise IndexDamagedError(
                f"the index at {self.location} holds {count} photos and its learned model was fitted on {model.count}"
                f" (an `ipl index` that did not finish): run {fix} to finish it"
            )
        return model  # while a writer is at work, the model it is replacing: whole, with its own collection

    def nearest(self, vectors: np.ndarray, n: int, learned: bool) -> list[list[tuple[float, dict[str, Any]]]]:
        """Per query vector, the n nearest catalog photos as (cosine similarity, metadata)."""
        from chromadb.errors import ChromaError

        if self.count() == 0:
            raise IndexMissingError(f"the catalog index at {self.location} is empty; add listings with `ipl index`")
        model = self.model()
        if vectors.shape[1] != model.mean.shape[0]:
            raise UserError(
                f"the index at {self.location} holds {model.mean.shape[0]}-d vectors and the embedder gives"
                f" {vectors.shape[1]}-d: it was built with another embedder (give the --embedder it was built"
                " with) or by another version of IPL (index the catalog again into a new folder)"
            )
        if not learned:
            return self._query(self.collection, vectors, min(n, self.count()))
        for _ in range(3):  # a refit in another process may swap the learned collection away meanwhile
            try:
                return self._query(self._existing(model.collection), model.project(vectors), min(n, model.count), True)
            except (ChromaError, CollectionSwappedError) as exc:
                failure = exc
                self._model = None
                model = self.model()
        raise IndexDamagedError(
            f"the learned collection {model.collection} of the index at {self.location} cannot be read"
            f" ({type(failure).__name__}): run `ipl index LISTINGS.jsonl --index {self.location}` to fit it again"
        )

    def _query(
        self, collection, vectors: np.ndarray, n: int, swappable: bool = False
    ) -> list[list[tuple[float, dict[str, Any]]]]:
        """`swappable`: the collection is a learned one that a refit in another process may drop while it
        is read; Chroma's errors then mean "read the model again", not a damaged index."""
        from chromadb.errors import ChromaError

        name = getattr(collection, "name", "?")
        with self._reading():
            try:
                result = collection.query(query_embeddings=vectors, n_results=n, include=["metadatas", "distances"])
            except ChromaError:
                if swappable:
                    raise CollectionSwappedError(name) from None
                raise
        metadatas, distances = result["metadatas"] or [], result["distances"] or []
        if len(metadatas) != len(vectors) or any(
            metas is None or dists is None or any(m is None for m in metas)
            for metas, dists in zip(metadatas, distances, strict=True)
        ):  # rows read back as nothing: a refit dropped a learned collection meanwhile, else the index is damaged
            if swappable:
                raise CollectionSwappedError(name)
            raise IndexDamagedError(self._damaged(f"collection {name} returned rows without their data"))
        return [
            [(1.0 - float(d), dict(m)) for m, d in zip(metas, dists, strict=True)]
            for metas, dists in zip(metadatas, distances, strict=True)
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
        "photo": row["photo"] if row.get("photo") in PHOTO_KINDS else "",
    }
    if isinstance(row.get("price"), int | float):
        meta["price"] = float(row["price"])
    return meta


def photo_kind(meta: dict[str, Any], photo: Photo) -> str:
    """What kind of photo a catalog photo is: what its row says, else a studio shot or a seller's
    photo as it looks (`photos.looks_studio`): a catalog whose rows do not say is still told apart."""
    if meta.get("photo") in PHOTO_KINDS:
        return str(meta["photo"])
    return STUDIO if looks_studio(photo.path, photo.sha256) else SELLER


def viewed_kind(kind: str) -> bool:
    """Whether a photo of this kind (`photo_kind`) of a rare product is viewed: a seller's photo, not a
    studio shot, whose crops are still a studio shot (the 400-row grocery catalog of one studio shot per
    product: category 0.296 -> 0.263 with its studio shots viewed, more photos left without a guess)."""
    return kind in SELLER_PHOTOS


def view_class(row: dict[str, Any]) -> tuple[str, str] | None:
    """The class a catalog row's photos count towards for views: ('product', its spu) where it names
    one; None without (a category's photos are not viewed: on the fashion long-tail catalog, studio
    shots of categories, views moved its category accuracy 0.838 -> 0.834, against grocery's products
    0.711 -> 0.776)."""
    return ("product", str(row["spu"])) if row.get("spu") else None


def neighbour(lid: str, sim: float, meta: dict[str, Any], text_match: float = 0.0) -> Neighbour:
    return Neighbour(
        id=lid,
        similarity=round(sim, 4),
        category=meta.get("category") or None,
        category_path=json.loads(meta.get("category_path") or "[]"),
        title=meta.get("title") or None,
        description=meta.get("description") or None,
        attributes=attributes_of(meta),
        spu=meta.get("spu") or None,
        price=meta.get("price"),
        currency=meta.get("currency") or None,
        text_match=text_match,
    )
