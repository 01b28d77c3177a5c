"""Benchmark at scale: the embedded index and the Chroma server side by side, indexing on Ray (issue #14, item 4).

    python scripts/bench_scale.py [--sizes 100000 1000000] [--where folder server] [--queries 60]
                                  [--ray-photos 600] [--workers 1 2] [--parts query ray]

Part `query`, per size and place, in its own process: synthetic catalog vectors (`benchmark.synthetic`:
the sample catalog's real vectors, then noisy copies in synthetic products, made a chunk at a time)
are written to a fresh index (a folder, or a `chroma run` this script starts on a free loopback port),
the catalog model is fitted (`Catalog.fit`: a seeded sample of at most `FIT_SAMPLE` photos, then every
photo projected page by page), and one photo's search as the graph runs it is timed (learned-space
products plus raw-space look-alikes, embedding apart). One JSON line per run: add and fit seconds,
the fit's own memory (resident growth over the fit), query p50/p95, peak memory of this process and,
for the server, of the server process.

Part `ray`: the first --ray-photos catalog photos (--listings, default the bundled sample, repeated
if it has fewer) embedded and written to a fresh folder by one process, then by Ray Data on a local
cluster of 1 and 2 workers (`--workers`); the fit is left out, the cluster's start is timed apart.
One JSON line per run: images/s.

Not a test; on a shared 2-core machine the figures are upper bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def server_peak_mib(pid: int) -> float:
    """The peak resident memory (VmHWM) of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Growth:
    """The most this process's resident memory grew over its block, MiB (polled every 20 ms)."""

    def __enter__(self) -> Growth:
        self.base = self.peak = rss_mib()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()
        return self

    def _poll(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, rss_mib())

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.mib = self.peak - self.base


def chunks(real: np.ndarray, metas: list[dict], n: int, rng: np.random.Generator, step: int = 50_000):
    """`benchmark.synthetic`'s n vectors a chunk at a time (ids numbered on), so 1M need not be held at once."""
    from benchmark import synthetic

    for start in range(0, n, step):
        vectors, out = synthetic(real, metas, min(n, start + step) - start + (len(real) if start else 0), rng)
        if start:  # the real ones once, at the start
            vectors, out = vectors[len(real) :], out[len(real) :]
        for m in out:
            if m["listing_id"].startswith("synthetic-"):
                m["listing_id"] = f"synthetic-{start}-{m['listing_id'].split('-')[1]}"
                m["spu"] = f"synthetic-{start}-{m['spu'].split('-')[1]}"
        yield start, vectors, out


def bench(n: int, where: str, queries: int) -> dict:
    from ipl_graph import plugins
    from ipl_graph.face.serve import free_port, stop
    from ipl_graph.policies import load_policy
    from ipl_tools.catalog.index import Catalog, read_listings
    from ipl_tools.catalog.searcher import aggregate, product_of

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        seed_index = Catalog(Path(tmp) / "seed", create=True)
        rows = [r for r in read_listings(ROOT / "samples" / "grocery" / "listings.jsonl")]
        seed_index.add_listings(rows, plugins.get("embedder", "efficientnet-lite0").embed, load_policy())
        records = seed_index.records()
        server = None
        location = str(Path(tmp) / "bench")
        if where == "server":
            port = free_port()
            server = subprocess.Popen([str(Path(sys.executable).with_name("chroma")), "run", "--path",
                                       str(Path(tmp) / "chroma"), "--host", "127.0.0.1", "--port", str(port)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(3)
            location = f"http://127.0.0.1:{port}?collection=bench"
        try:
            for _ in range(60):
                try:
                    catalog = Catalog(location, create=True)
                    break
                except Exception:  # the server is still starting
                    time.sleep(1)
            step = catalog.client.get_max_batch_size()
            if server is not None:  # a request is JSON, ~21 bytes a float: stay under the server's 40 MiB
                step = min(step, 500)
            start = time.perf_counter()
            for first, vectors, metas in chunks(records.vectors, records.metas, n, rng):
                for s in range(0, len(vectors), step):
                    catalog.collection.add(ids=[f"{m['listing_id']}#{first + s + i}" for i, m in enumerate(
                        metas[s : s + step])], embeddings=vectors[s : s + step], metadatas=metas[s : s + step])
            add_s = time.perf_counter() - start
            del vectors, metas  # the fit reads the catalog back from the index, as `ipl index` does
            index_mib = rss_mib()
            start = time.perf_counter()
            with Growth() as fit_memory:
                model = catalog.fit()
            fit_s = time.perf_counter() - start
            fit_peak = peak_mib()
            probe = np.asarray(catalog.collection.get(ids=[f"{m['listing_id']}#{i}" for i, m in enumerate(
                records.metas[: min(queries, len(records.metas))])], include=["embeddings"])["embeddings"],
                dtype=np.float32)
            probe = probe + 0.4 / np.sqrt(probe.shape[1]) * rng.standard_normal(probe.shape).astype(np.float32)
            probe /= np.linalg.norm(probe, axis=1, keepdims=True)
            reader = Catalog(location)  # a reader, as `ipl list` and the server are
            times = []
            for q in probe:
                start = time.perf_counter()
                aggregate(reader.nearest(q[None], 200, learned=True), product_of)
                aggregate(reader.nearest(q[None], 30, learned=False))
                times.append(time.perf_counter() - start)
            times = sorted(times[5:])  # the first few warm the collections
            result = {"where": where, "catalog_vectors": n, "add_s": round(add_s, 1),
                      "add_vectors_per_s": round(n / add_s), "fit_s": round(fit_s, 1),
                      "fit_sample": model.report.get("fit_sample", n), "fit_growth_mib": round(fit_memory.mib),
                      "client_rss_before_fit_mib": round(index_mib),
                      "query_ms_p50": round(1000 * times[len(times) // 2], 1),
                      "query_ms_p95": round(1000 * times[int(0.95 * (len(times) - 1))], 1),
                      "client_peak_mib": round(fit_peak)}
            if server is not None:
                result["server_peak_mib"] = round(server_peak_mib(server.pid))
            return result
        finally:
            if server is not None:
                stop(server)


def bench_ray(photos: int, workers: int, listings: Path) -> dict:
    """Embed and write `photos` catalog photos into a fresh folder: one process (workers 0) or Ray."""
    from ipl_graph import plugins
    from ipl_graph.policies import load_policy
    from ipl_tools.catalog.index import Catalog, read_listings
    from ipl_tools.catalog.ray_index import RayConfig

    rows = [r for r in read_listings(listings) if r.get("role", "catalog") == "catalog" and r["images"]]
    rows = [{**r, "id": f"{r['id']}~{k}"} for k in range(-(-photos // len(rows))) for r in rows][:photos]
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(Path(tmp) / "index", create=True)
        catalog._refit = lambda: None  # type: ignore[method-assign]  # the fit is measured by part `query`
        start = time.perf_counter()
        if workers:
            import ray

            ray.init(num_cpus=workers, include_dashboard=False, object_store_memory=RayConfig.object_store_bytes)
        start_s = time.perf_counter() - start
        embed = None if workers else plugins.get("embedder", "efficientnet-lite0").embed
        start = time.perf_counter()
        report = catalog.add_listings(rows, embed, load_policy(), ray=RayConfig(workers=workers) if workers else None)
        took = time.perf_counter() - start
        return {"indexing": f"ray, {workers} workers" if workers else "one process", "photos": report.added,
                "s": round(took, 1), "images_per_s": round(report.added / took, 1),
                "cluster_start_s": round(start_s, 1) if workers else None, "peak_mib": round(peak_mib())}


def child(*argv: str) -> None:
    """Run one measurement in its own process and print its JSON line (or what failed)."""
    out = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True,
                         env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    if out.returncode:
        print(json.dumps({"run": " ".join(argv), "failed": out.stderr.strip()[-300:]}), flush=True)
        return
    print(out.stdout.strip().splitlines()[-1], flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--where", nargs="+", choices=["folder", "server"], default=["folder", "server"])
    p.add_argument("--queries", type=int, default=60)
    p.add_argument("--parts", nargs="+", choices=["query", "ray"], default=["query", "ray"])
    p.add_argument("--ray-photos", type=int, default=600, help="photos indexed by part `ray` (default: 600)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="Ray workers to compare (default: 1 2)")
    p.add_argument("--listings", type=Path, default=ROOT / "samples" / "grocery" / "listings.jsonl")
    p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--ray-one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    from ipl_graph import taming

    taming.apply()
    if args.one:  # a child process: one measurement, one JSON line
        print(json.dumps(bench(int(args.one[0]), args.one[1], args.queries)))
        return
    if args.ray_one is not None:
        print(json.dumps(bench_ray(args.ray_photos, args.ray_one, args.listings)))
        return
    if "ray" in args.parts:
        for workers in [0, *args.workers]:
            child("--ray-one", str(workers), "--ray-photos", str(args.ray_photos), "--listings", str(args.listings))
    if "query" in args.parts:
        for n in args.sizes:
            for where in args.where:
                child("--one", str(n), where, "--queries", str(args.queries))


if __name__ == "__main__":
    main()
