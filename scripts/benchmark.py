"""Benchmark: indexing throughput and query latency at 1k, 10k and 100k catalog photos, with peak memory.

    python scripts/benchmark.py [--sizes 1000 10000 100000] [--images DIR]

Indexing embeds real photos (the bundled sample catalog, or --images) through ONNX Runtime on the
machine's cores and writes them to a fresh index. Catalogs beyond the real photos are filled with
synthetic vectors: real vectors with noise, spread over synthetic products, so the learned
projection and the search see a realistic spread. A query is one photo's search as the graph runs
it (learned-space products, plus raw-space look-alikes) after embedding; embedding is timed apart.
Each size runs in its own process so that its peak memory (max RSS) is its own. Not a test.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_indexing(images: Path) -> dict:
    from PIL import Image

    from ipl_graph import plugins
    from ipl_graph.policies import load_policy
    from ipl_tools.catalog.index import Catalog

    paths = sorted(p for p in images.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:1024]
    embedder = plugins.get("embedder", "efficientnet-lite0")
    embedder.embed_images([Image.open(paths[0]).convert("RGB")])  # load and warm the session
    start = time.perf_counter()
    pixels = [Image.open(p).convert("RGB") for p in paths]
    embedder.embed_images(pixels)
    embed_rate = len(paths) / (time.perf_counter() - start)
    rows = [{"id": f"bench-{i}", "images": [str(p)], "category": p.parent.name, "spu": p.stem.rsplit("_", 1)[0]}
            for i, p in enumerate(paths)]
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Catalog(tmp, create=True)
        fresh = plugins.get("embedder", "efficientnet-lite0").__class__()  # no cached vectors
        start = time.perf_counter()
        catalog.add_listings(rows, fresh.embed, load_policy())
        total = time.perf_counter() - start
        fit_s = catalog.model().report.get("fit_s")
    return {"photos": len(paths), "embed_images_per_s": round(embed_rate, 1),
            "index_images_per_s": round(len(paths) / total, 1), "index_with_fit_s": round(total, 1),
            "fit_s": fit_s, "peak_mib": round(peak_mib())}


def synthetic(real: np.ndarray, metas: list[dict], n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    """n vectors: the real ones, then noisy copies of them in new synthetic products of ~30 photos."""
    vectors, out = [real[: min(n, len(real))]], list(metas[: min(n, len(real))])
    left = n - len(out)
    if left > 0:
        base = rng.integers(0, len(real), size=(left + 29) // 30)  # one real photo seeds each product
        scale = 1 / np.sqrt(real.shape[1])  # noise of norm ~r is r * scale per dimension
        centres = real[base] + 0.3 * scale * rng.standard_normal((len(base), real.shape[1])).astype(np.float32)
        which = np.arange(left) // 30
        fake = centres[which] + 0.4 * scale * rng.standard_normal((left, real.shape[1])).astype(np.float32)
        vectors.append(fake / np.linalg.norm(fake, axis=1, keepdims=True))
        for i in range(left):
            seed = metas[base[which[i]]]
            out.append({**seed, "listing_id": f"synthetic-{i}", "spu": f"synthetic-{which[i]}", "image": ""})
    return np.concatenate(vectors).astype(np.float32), out


def bench_size(n: int, images: Path, queries: int = 60) -> dict:
    from ipl_graph import plugins
    from ipl_graph.policies import load_policy
    from ipl_tools.catalog.index import Catalog, read_listings
    from ipl_tools.catalog.searcher import aggregate, product_of

    rng = np.random.default_rng(0)
    listings = images / "listings.jsonl"
    with tempfile.TemporaryDirectory() as tmp:
        seed_index = Catalog(Path(tmp) / "seed", create=True)
        rows = [r for r in read_listings(listings) if r.get("role", "catalog") == "catalog"]
        seed_index.add_listings(rows, plugins.get("embedder", "efficientnet-lite0").embed, load_policy())
        records = seed_index.records()
        vectors, metas = synthetic(records.vectors, records.metas, n, rng)
        catalog = Catalog(Path(tmp) / "bench", create=True)
        step = catalog.client.get_max_batch_size()
        start = time.perf_counter()
        for s in range(0, n, step):
            catalog.collection.add(ids=[f"{m['listing_id']}#{s + i}" for i, m in enumerate(metas[s : s + step])],
                                   embeddings=vectors[s : s + step], metadatas=metas[s : s + step])
        add_s = time.perf_counter() - start
        start = time.perf_counter()
        catalog.fit()
        fit_s = time.perf_counter() - start
        probe = vectors[rng.integers(0, n, size=queries)]
        probe = probe + 0.4 / np.sqrt(probe.shape[1]) * rng.standard_normal(probe.shape).astype(np.float32)
        probe /= np.linalg.norm(probe, axis=1, keepdims=True)
        times = []
        for q in probe:
            start = time.perf_counter()
            aggregate(catalog.nearest(q[None], 200, learned=True), product_of)
            aggregate(catalog.nearest(q[None], 30, learned=False))
            times.append(time.perf_counter() - start)
        times = sorted(times[5:])  # the first few warm the collections
        return {"catalog_vectors": n, "add_s": round(add_s, 1), "fit_s": round(fit_s, 1),
                "query_ms_p50": round(1000 * times[len(times) // 2], 1),
                "query_ms_p95": round(1000 * times[int(0.95 * (len(times) - 1))], 1),
                "peak_mib": round(peak_mib())}


def bench_embed_query(images: Path) -> dict:
    from ipl_graph import plugins
    from ipl_graph.policies import load_policy
    from ipl_tools.photos import resolve

    embedder = plugins.get("embedder", "efficientnet-lite0")
    photos = [resolve(str(p), load_policy().limits) for p in sorted(images.rglob("*.jpg"))[:40]]
    embedder.embed_query(photos[:1])
    times = []
    for p in photos[1:]:
        start = time.perf_counter()
        embedder.embed_query([p])
        times.append(time.perf_counter() - start)
    times.sort()
    return {"embed_query_ms_p50": round(1000 * times[len(times) // 2], 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--images", type=Path, default=ROOT / "samples" / "grocery",
                   help="a folder with listings.jsonl and its photos (default: the sample catalog)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    from ipl_graph import taming

    taming.apply()
    if args.one:  # a child process: one measurement, one JSON line
        what = args.one
        result = bench_indexing(args.images) if what == "index" else (
            bench_embed_query(args.images) if what == "embed" else bench_size(int(what), args.images))
        print(json.dumps(result))
        return
    for what in ["index", "embed", *map(str, args.sizes)]:
        out = subprocess.run([sys.executable, __file__, "--one", what, "--images", str(args.images)],
                             capture_output=True, text=True, check=True)
        print(json.dumps({"run": what, **json.loads(out.stdout.strip().splitlines()[-1])}), flush=True)


if __name__ == "__main__":
    main()
