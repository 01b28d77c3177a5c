"""The catalog index on a Chroma server (`chroma run`, or Chroma's distributed deployment): where
`--index` is `http://HOST:PORT[?collection=NAME&tenant=T&database=D]` instead of a folder.

Everything a client needs lives on the server, so a client holding only the URL lists: the
`NAME` collection (raw photo vectors), `NAME-learned-<n>` (the projection of the current fit),
`NAME-views` (views of rare products' sellers' photos, which the fit reads) and
`NAME-model`, which keeps the learned model's bytes (the .npz `IndexModel.save` writes) in versioned
chunks and a `current` pointer record, upserted last: a reader finds the old version or the new one,
never half of one. The folder's write lock becomes a lease record in `NAME-model` (Chroma ignores the
`add` of an id it holds, so the first writer wins), renewed while the writer works and taken over
when its holder stopped renewing it. chromadb's HTTP client is imported only here, when a URL is used.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ipl_graph.errors import UserError
from ipl_tools.catalog.model import MODEL_FILE, IndexModel

CHUNK_BYTES = 1_000_000
"""Raw model bytes per record (base64 in a metadata string: Chroma indexes documents for full-text
search, ~20x slower to write than metadata)."""
CHUNKS_PER_REQUEST = 8
"""Chunks written per request: ~11 MB of base64, under `chroma run`'s 40 MiB payload limit (a 100k-photo
catalog's model, with its colour table, is tens of MB)."""
LEASE_S = 30.0
"""A writer's lease lasts this long unless renewed (every third of it): a writer that died frees the
index within LEASE_S."""
POINTER, WRITER = "current", "writer"
KEPT_VERSIONS = 2
"""Model versions kept: the current one and the one before, which a reader may be fetching."""


def is_url(index: str | Path) -> bool:
    return str(index).startswith(("http://", "https://"))


@dataclass(frozen=True)
class ServerIndex:
    """Where an index lives on a Chroma server, parsed from `--index`."""

    url: str
    host: str
    port: int
    ssl: bool
    collection: str = "listings"
    tenant: str = "default_tenant"
    database: str = "default_database"

    @classmethod
    def parse(cls, url: str) -> ServerIndex:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"collection", "tenant", "database"}
        if not parts.hostname or unknown or parts.path.strip("/"):
            raise UserError(f"--index {url}: expected http://HOST:PORT[?collection=NAME&tenant=T&database=D]"
                            + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""))
        ssl = parts.scheme == "https"
        return cls(url=url, host=parts.hostname, port=parts.port or (443 if ssl else 8000), ssl=ssl,
                   collection=query.get("collection", "listings"), tenant=query.get("tenant", "default_tenant"),
                   database=query.get("database", "default_database"))

    @property
    def learned(self) -> str:
        return f"{self.collection}-learned"

    @property
    def views(self) -> str:
        return f"{self.collection}-views"

    @property
    def model(self) -> str:
        return f"{self.collection}-model"


def connect(where: ServerIndex, create: bool) -> Any:
    """An HttpClient of the index's tenant and database (created first when `create`)."""
    from ipl_graph.taming import chromadb_imports

    with chromadb_imports():  # offline, without seconds of an unused grammar (ipl_graph.taming)
        import chromadb
    from chromadb.config import Settings
    from chromadb.errors import NotFoundError

    settings = Settings(anonymized_telemetry=False, chroma_server_host=where.host,
                        chroma_server_http_port=where.port, chroma_server_ssl_enabled=where.ssl,
                        chroma_api_impl="chromadb.api.fastapi.FastAPI")
    try:
        if create:
            admin = chromadb.AdminClient(settings)
            with contextlib.suppress(NotFoundError):
                admin.get_tenant(where.tenant)
                admin.get_database(where.database, tenant=where.tenant)
                return chromadb.HttpClient(host=where.host, port=where.port, ssl=where.ssl, tenant=where.tenant,
                                           database=where.database, settings=settings)
            _create(admin, where)
        return chromadb.HttpClient(host=where.host, port=where.port, ssl=where.ssl, tenant=where.tenant,
                                   database=where.database, settings=settings)
    except ValueError as exc:  # chromadb's "Could not connect to a Chroma server"
        raise UserError(f"{where.url}: {exc} (start one with `chroma run --path DIR --port {where.port}`)") from None
    except NotFoundError as exc:
        raise UserError(f"{where.url}: {exc} (`ipl index` creates it)") from None


def _create(admin: Any, where: ServerIndex) -> None:
    from chromadb.errors import ChromaError

    with contextlib.suppress(ChromaError):  # it exists already
        admin.create_tenant(where.tenant)
    with contextlib.suppress(ChromaError):
        admin.create_database(where.database, tenant=where.tenant)


class ServerModelStore:
    """The learned model and the writer's lease, in the `NAME-model` collection."""

    def __init__(self, where: ServerIndex, collection: Any) -> None:
        self.where = where
        self.collection = collection
        self.owner = uuid.uuid4().hex

    # --- the model: versioned chunks, swapped in by the pointer ----------------------------------

    def pointer(self) -> dict[str, Any] | None:
        got = self.collection.get(ids=[POINTER], include=["metadatas"])
        return dict(got["metadatas"][0]) if got["ids"] else None

    def stamp(self) -> tuple[int, str] | None:
        pointer = self.pointer()
        return (int(pointer["version"]), str(pointer["sha256"])) if pointer else None

    def save(self, model: IndexModel) -> None:
        with tempfile.TemporaryDirectory(prefix="ipl-model-") as tmp:
            model.save(Path(tmp))
            data = (Path(tmp) / MODEL_FILE).read_bytes()
        pointer = self.pointer()
        version = 1 + (int(pointer["version"]) if pointer else 0)
        chunks = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)] or [b""]
        ids = [f"v{version}:{i}" for i in range(len(chunks))]
        for start in range(0, len(chunks), CHUNKS_PER_REQUEST):  # a request stays under the server's payload limit
            part = slice(start, start + CHUNKS_PER_REQUEST)
            self.collection.upsert(ids=ids[part], embeddings=[[1.0]] * len(ids[part]), metadatas=[
                {"version": version, "chunk": base64.b64encode(c).decode()} for c in chunks[part]])
        self.collection.upsert(ids=[POINTER], embeddings=[[1.0]], metadatas=[{
            "version": version, "chunks": len(chunks), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}])
        self.collection.delete(where={"version": {"$lte": version - KEPT_VERSIONS}})

    def load(self) -> IndexModel | None:
        """The current model; None when none was saved. Damaged bytes raise ValueError; a version
        swapped away while it was read is read again, once."""
        for attempt in range(2):
            pointer = self.pointer()
            if pointer is None:
                return None
            ids = [f"v{pointer['version']}:{i}" for i in range(int(pointer["chunks"]))]
            got = self.collection.get(ids=ids, include=["metadatas"])
            chunks = dict(zip(got["ids"], got["metadatas"], strict=True))
            if set(ids) <= set(chunks):
                data = b"".join(base64.b64decode(str(chunks[i]["chunk"])) for i in ids)
                if hashlib.sha256(data).hexdigest() != pointer["sha256"]:
                    raise ValueError(f"model version {pointer['version']} does not match its checksum")
                with tempfile.TemporaryDirectory(prefix="ipl-model-") as tmp:
                    (Path(tmp) / MODEL_FILE).write_bytes(data)
                    return IndexModel.load(Path(tmp))
            if attempt:
                raise ValueError(f"model version {pointer['version']} is missing chunks")
        return None

    # --- the writer's lease -------------------------------------------------------------------------

    def _lease(self) -> dict[str, Any] | None:
        got = self.collection.get(ids=[WRITER], include=["metadatas"])
        return dict(got["metadatas"][0]) if got["ids"] else None

    def writer_active(self) -> bool:
        lease = self._lease()
        return lease is not None and float(lease["expires"]) > time.time()

    def _renew(self) -> None:
        self.collection.upsert(ids=[WRITER], embeddings=[[1.0]],
                               metadatas=[{"owner": self.owner, "expires": time.time() + LEASE_S}])

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the index's one writer lease for the block, waiting for another writer to finish."""
        while True:
            lease = self._lease()
            if lease is not None and float(lease["expires"]) <= time.time() and lease["owner"] != self.owner:
                self.collection.delete(ids=[WRITER], where={"owner": lease["owner"]})  # its holder stopped
            self.collection.add(ids=[WRITER], embeddings=[[1.0]],
                                metadatas=[{"owner": self.owner, "expires": time.time() + LEASE_S}])
            lease = self._lease()
            if lease is not None and lease["owner"] == self.owner:
                break
            time.sleep(1.0)
        stop = threading.Event()
        renewer = threading.Thread(target=self._keep, args=(stop,), daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            self.collection.delete(ids=[WRITER], where={"owner": self.owner})

    def _keep(self, stop: threading.Event) -> None:
        while not stop.wait(LEASE_S / 3):
            with contextlib.suppress(Exception):  # a missed renewal is retried; the lease outlasts two
                self._renew()
