"""Catalog indexing on Ray (`ipl index LISTINGS --ray [ADDRESS]`).

Ray Data reads, decodes and embeds the new catalog photos across the workers of a Ray cluster (one
embedder per worker, an actor); this process, the index's one writer under its lock, adds what
streams back in batches, in the listings' order, so the index holds the same ids, metadata and
vectors as the single-process path and the catalog model is fitted on the same rows in the same
order. The listings file is read and screened here (the trust boundary's quarantine); only photo
references travel. Without an address a local cluster is started for the run and stopped after it.

Ray is the optional extra `ray` (`pip install 'ipl[ray]'`); it is imported only here, and only when
asked for. Workers of a remote cluster need IPL installed as the driver has it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ipl_graph.errors import PhotoError, UserError
from ipl_tools.catalog.embedding import VIEW_CROPS

if TYPE_CHECKING:
    from ipl_graph.policies import Limits, Policy
    from ipl_tools.catalog.index import Catalog, IndexReport


@dataclass
class RayConfig:
    address: str | None = None
    """A running cluster (`HOST:6379`, `ray://HOST:10001`, or `auto`); None starts a local one."""
    workers: int | None = None
    """Embedding actors, each holding one embedder (default: one per CPU of the cluster)."""
    batch: int = 64
    """Photos per embedding call and per write to the index (the single-process path's batch)."""
    object_store_bytes: int = 1 << 30
    """A local cluster's object store: the streamed blocks need little, and Ray's default takes 30% of the RAM."""


class EmbedPhotos:
    """A Ray Data actor: resolves (reads, checks, decodes) and embeds a batch of photo references, and
    the views of sellers' photos of rare products (`rare`, `viewed_kind`) where its embedder makes views."""

    def __init__(self, embedder: str, limits: Limits) -> None:
        from ipl_graph import plugins

        self.model = plugins.get("embedder", embedder)
        self.limits = limits

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from ipl_tools.catalog.index import photo_kind, viewed_kind
        from ipl_tools.photos import resolve

        paths, errors, photos, good = [], [], [], []
        for n, ref in enumerate(batch["ref"]):
            try:
                photo = resolve(str(ref), self.limits)
            except PhotoError as exc:
                paths.append("")
                errors.append(str(exc))
                continue
            paths.append(photo.path)
            errors.append("")
            photos.append(photo)
            good.append(n)
        embedded = self.model.embed(photos) if photos else None  # (G, D)
        dim = embedded.shape[1] if embedded is not None else getattr(self.model, "dim", 0)
        vectors = np.zeros((len(paths), dim), np.float32)  # (B, D); zeros where unreadable
        kinds = np.full(len(paths), "", dtype=object)  # as `photo_kind` tells it, on the worker that read the pixels
        embed_views = getattr(self.model, "embed_views", None)
        views = np.zeros((len(paths), len(VIEW_CROPS) if embed_views else 0, dim), np.float32)  # (B, V, D)
        viewed = np.zeros(len(paths), dtype=bool)
        if embedded is not None:
            vectors[good] = embedded
            kinds[good] = [photo_kind(json.loads(batch["meta"][n]), ph) for n, ph in zip(good, photos, strict=True)]
            rare = [(n, ph) for n, ph in zip(good, photos, strict=True) if batch["rare"][n] and viewed_kind(kinds[n])]
            if rare and embed_views:
                views[[n for n, _ in rare]] = embed_views([ph for _, ph in rare])
                viewed[[n for n, _ in rare]] = True
        return batch | {"path": np.array(paths, dtype=object), "error": np.array(errors, dtype=object),
                        "vector": vectors, "photo": kinds, "views": views, "viewed": viewed}


def add_new(catalog: Catalog, rows: list[dict[str, Any]], policy: Policy, config: RayConfig,
            progress: Callable[[int], None], report: IndexReport) -> None:
    """Embed the photos of `rows` not yet in `catalog` on Ray and add them; the caller holds the write lock."""
    items: list[dict[str, str]] = []
    left: dict[str, int] = {}  # row id: its photos not yet written
    for row, new, meta, rare in catalog.new_images(rows, report, progress):
        meta_json = json.dumps(meta, ensure_ascii=False)
        items += [{"row": str(row["id"]), "id": image_id, "ref": ref, "meta": meta_json, "rare": rare}
                  for image_id, ref in new]
        if new:
            left[str(row["id"])] = len(new)
        else:
            progress(1)
    if not items:
        return
    with _cluster(config) as workers, catalog.held_writes() as write:
        for batch in _embedded(items, catalog.embedder, policy.limits, config, workers):
            ok = batch["error"] == ""
            for row_id, error in zip(batch["row"][~ok], batch["error"][~ok], strict=True):
                report.bad.append(f"{row_id}: {error}")
            if ok.any():
                written = zip(batch["meta"][ok], batch["path"][ok], batch["photo"][ok], strict=True)
                write([str(i) for i in batch["id"][ok]], batch["vector"][ok],
                      [{**json.loads(m), "image": str(p), "photo": str(k)} for m, p, k in written])
                report.added += int(ok.sum())
                viewed = ok & batch["viewed"].astype(bool)
                if viewed.any():
                    catalog.write_views([str(i) for i in batch["id"][viewed]], batch["views"][viewed])
                    report.views += int(viewed.sum())
            for row_id in batch["row"]:
                left[row_id] -= 1
                if not left[row_id]:
                    progress(1)


def _embedded(items: list[dict[str, str]], embedder: str, limits: Limits, config: RayConfig, workers: int):
    """Batches of embedded photos (dicts of arrays: row, id, ref, meta, path, error, vector), in the items' order."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the same rows in the same order as one process
    context.enable_progress_bars = True
    dataset = ray.data.from_items(items, override_num_blocks=max(workers, -(-len(items) // config.batch)))
    embedded = dataset.map_batches(EmbedPhotos, fn_constructor_args=(embedder, limits), batch_size=config.batch,
                                   batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
                                   num_cpus=1)
    yield from embedded.iter_batches(batch_size=config.batch, batch_format="numpy")


class _cluster:
    """The cluster at `config.address`, or a local one started here and stopped on leaving;
    entered, it gives the number of embedding workers."""

    def __init__(self, config: RayConfig) -> None:
        self.config = config
        self.started = False

    def __enter__(self) -> int:
        try:
            import ray
        except ImportError:
            raise UserError("--ray needs Ray: pip install 'ipl[ray]'") from None
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
        if not ray.is_initialized():
            if self.config.address:
                try:
                    ray.init(address=self.config.address, logging_level=logging.WARNING)
                except ConnectionError as exc:
                    raise UserError(f"--ray {self.config.address}: {exc}") from None
            else:
                ray.init(num_cpus=self.config.workers or os.cpu_count() or 1, include_dashboard=False,
                         object_store_memory=self.config.object_store_bytes, logging_level=logging.WARNING)
            self.started = True
        return self.config.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))

    def __exit__(self, *exc: object) -> None:
        if self.started:
            import ray

            ray.shutdown()
