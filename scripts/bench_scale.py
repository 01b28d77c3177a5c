"""Benchmark at scale: the embedded index and the Chroma server side by side (issue #14, item 4).

    python scripts/bench_scale.py [--sizes 100000 1000000] [--where folder server] [--queries 60]

Per size and place, in its own process: synthetic catalog vectors (`benchmark.synthetic`: the sample
catalog's real vectors, then noisy copies in synthetic products) are written to a fresh index (a
folder, or a `chroma run` this script starts on a free loopback port), the catalog model is fitted
(`Catalog.fit`, all vectors in this process's memory), and one photo's search as the graph runs it
is timed (learned-space products plus raw-space look-alikes, embedding apart). Prints one JSON line
per run: add and fit seconds, query p50/p95, peak memory of this process and, for the server, of
the server process. Not a test; on a shared 2-core machine the figures are upper bounds.
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


def bench(n: int, where: str, queries: int) -> dict:
    from benchmark import synthetic

    from ipl_graph import plugins
    from ipl_graph.policies import load_policy
    from ipl_graph.serve import free_port, stop
    from ipl_tools.index import Catalog, read_listings
    from ipl_tools.search import aggregate, product_of

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        seed_index = Catalog(Path(tmp) / "seed", create=True)
        rows = [r for r in read_listings(ROOT / "samples" / "grocery" / "listings.jsonl")]
        seed_index.add_listings(rows, plugins.get("embedder", "efficientnet-lite0").embed, load_policy())
        records = seed_index.records()
        vectors, metas = synthetic(records.vectors, records.metas, n, rng)
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
            start = time.perf_counter()
            for s in range(0, n, step):
                catalog.collection.add(ids=[f"{m['listing_id']}#{s + i}" for i, m in enumerate(metas[s : s + step])],
                                       embeddings=vectors[s : s + step], metadatas=metas[s : s + step])
            add_s = time.perf_counter() - start
            del vectors, metas  # the fit reads the catalog back from the index, as `ipl index` does
            start = time.perf_counter()
            catalog.fit()
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
                      "query_ms_p50": round(1000 * times[len(times) // 2], 1),
                      "query_ms_p95": round(1000 * times[int(0.95 * (len(times) - 1))], 1),
                      "client_peak_mib": round(fit_peak)}
            if server is not None:
                result["server_peak_mib"] = round(server_peak_mib(server.pid))
            return result
        finally:
            if server is not None:
                stop(server)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--where", nargs="+", choices=["folder", "server"], default=["folder", "server"])
    p.add_argument("--queries", type=int, default=60)
    p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    from ipl_graph import offline

    offline.apply()
    if args.one:  # a child process: one measurement, one JSON line
        print(json.dumps(bench(int(args.one[0]), args.one[1], args.queries)))
        return
    for n in args.sizes:
        for where in args.where:
            out = subprocess.run([sys.executable, __file__, "--one", str(n), where, "--queries", str(args.queries)],
                                 capture_output=True, text=True)
            if out.returncode:
                print(json.dumps({"where": where, "catalog_vectors": n, "failed": out.stderr.strip()[-300:]}))
                continue
            print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
