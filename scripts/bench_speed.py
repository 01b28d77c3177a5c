"""Speed a seller and an operator feel, in one run (issue #16):

    python scripts/bench_speed.py [--listings L.jsonl] [--queries Q.jsonl] [--limit 60] [--runs 3]

1. cold start: `python -c pass`, importing the libraries, `ipl list --no-worker` (a new process that
   does everything), the first `ipl list` (starts the warm worker), later ones (the worker warm) and
   one right after an `ipl index` that added a listing (as at a terminal: it starts the worker), each
   wall seconds (median of --runs) and peak memory;
2. a warm listing in one process, OCR on, new photos each time: p50 wall and p50 per node;
3. indexing the catalog rows (fit included) with the fp32 and the int8 embedder, then ~9% more photos
   (new listings of known products, from query rows no other part uses: projected by the model as it
   is): photos a second;
4. identical@1 and category accuracy of both on the first --limit query rows.
Defaults: the bundled sample catalog and its queries. Not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IPL = str(Path(sys.executable).with_name("ipl"))
LIBRARIES = "import langgraph.graph, chromadb, guardrails, onnxruntime, rapidocr_onnxruntime, PIL, numpy" + (
    ", nudenet" if importlib.util.find_spec("nudenet") else "")  # the optional extra, where installed
EMBEDDERS = ("efficientnet-lite0", "efficientnet-lite0-int8")


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one process."""
    with tempfile.NamedTemporaryFile("r") as peak:  # GNU time: this process's size would count in a fork
        start = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", peak.name, *cmd], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        return time.perf_counter() - start, int(peak.read().split()[-1]) / 1024


def median_of(cmds: list[list[str]]) -> tuple[float, float]:
    runs = [timed(c) for c in cmds]
    return statistics.median(w for w, _ in runs), max(m for _, m in runs)


def worker_peak_mib() -> float | None:
    for pid in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"ipl_graph.face.worker" in cmdline and os.getuid() == os.stat(f"/proc/{pid}").st_uid:
                hwm = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("VmHWM"))
                return int(hwm.split()[1]) / 1024
        except (OSError, StopIteration):
            continue
    return None


def cold(photos: list[str], index: str, runs: int, new_rows: list[Path]) -> None:
    """`new_rows`: a listings file per run, of rows not yet in `index`, for `ipl index` to add."""
    from ipl_graph.face import worker

    listing = [IPL, "list", "--index", index, "--json"]
    print("1. cold start (wall s, peak MiB; median of", runs, "runs)")
    rows = [("python -c pass", median_of([[sys.executable, "-c", "pass"]] * runs)),
            ("import the libraries", median_of([[sys.executable, "-c", LIBRARIES]] * runs)),
            ("ipl list --no-worker", median_of([[*listing, p, "--no-worker"] for p in photos[:runs]]))]
    firsts = []
    for p in photos[runs : 2 * runs]:
        worker.stop()
        time.sleep(0.5)
        firsts.append(timed([*listing, p]))
    rows.append(("ipl list, first (starts the worker)", (statistics.median(w for w, _ in firsts),
                                                        max(m for _, m in firsts))))
    rows.append(("ipl list, worker warm", median_of([[*listing, p] for p in photos[2 * runs : 3 * runs]])))
    after = []
    for p, rows_file in zip(photos[:runs], new_rows, strict=True):  # as a seller at a terminal: index, then list
        worker.stop()
        subprocess.run([IPL, "index", str(rows_file), "--index", index], env=os.environ | {"IPL_WORKER": "1"},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        after.append(timed([*listing, p]))
    rows.append(("ipl list right after ipl index", (statistics.median(w for w, _ in after),
                                                   max(m for _, m in after))))
    listed = json.loads(subprocess.run([*listing, photos[0]], capture_output=True, text=True, check=True).stdout)
    print("   the listing's checks:", ", ".join(listed["safety"]["checks"]),
          "(nudity:none without the optional nudenet extra, as the README's install has it)")
    for name, (wall, mib) in rows:
        print(f"   {name:38s} {wall:6.2f} s {mib:7.0f} MiB")
    print(f"   {'the worker process (peak)':38s} {'':8s} {worker_peak_mib() or 0:7.0f} MiB")
    worker.stop()


def warm(photos: list[str], index: str) -> None:
    from ipl_graph import taming

    taming.apply()
    from ipl_graph.context import Context
    from ipl_graph.graph import graph
    from ipl_graph.state import InputState

    def run(photo: str) -> tuple[float, dict[str, float]]:
        starts: dict[str, float] = {}
        took: dict[str, float] = {}
        begin = time.perf_counter()
        for event in graph.stream(InputState(photos=[photo]), context=Context(index_dir=index), stream_mode="debug"):
            at = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
            name = event["payload"]["name"]
            if event["type"] == "task":
                starts[name] = at
            elif event["type"] == "task_result":
                took[name] = at - starts[name]
        return time.perf_counter() - begin, took

    run(photos[0])  # load the models
    results = [run(p) for p in photos[1:]]
    nodes: dict[str, list[float]] = {}
    for _, took in results:
        for name, seconds in took.items():
            nodes.setdefault(name, []).append(seconds)
    wall = statistics.median(w for w, _ in results)
    print(f"2. warm listing, OCR on, {len(results)} new photos: p50 {wall * 1000:.0f} ms"
          f" (max {max(w for w, _ in results) * 1000:.0f} ms); p50 per node (ms):")
    print("   " + "  ".join(f"{n} {statistics.median(s) * 1000:.0f}" for n, s in nodes.items()))


def index_and_score(catalog: list[dict[str, Any]], queries: list[dict[str, Any]], folder: Path,
                    spare: list[dict[str, Any]]) -> None:
    from ipl_graph import plugins
    from ipl_graph.context import Context
    from ipl_graph.face.evaluate import category_right, retrieval, run_all
    from ipl_graph.policies import load_policy
    from ipl_tools.catalog.config import LEARN
    from ipl_tools.catalog.index import Catalog, catalog_embedding
    from ipl_tools.photos import load_rgb

    photos = sum(len(r["images"]) for r in catalog)
    print(f"3-4. indexing {photos} catalog photos (fit included) and {len(queries)} queries, per embedder:")
    for name in EMBEDDERS:
        embedder = plugins.get("embedder", name)
        images = [load_rgb(p, p) for r in catalog[:256] for p in r["images"][:1]]
        embedder.embed_images(images[:32])  # loaded (and, the first time, exported or quantized) before timing
        start = time.perf_counter()
        embedder.embed_images(images)
        network = len(images) / (time.perf_counter() - start)
        index = Catalog(folder / name, name, create=True)
        start = time.perf_counter()
        embedding = catalog_embedding(embedder)
        index.add_listings(catalog, embedding.embed, load_policy(), workers=embedding.workers, views=embedding.views)
        took = time.perf_counter() - start
        results = [r for r, _ in run_all(queries, Context(index_dir=str(folder / name), embedder=name), name)]
        scores = retrieval(queries, results)
        category = statistics.mean(category_right(q, r) for q, r in zip(queries, results, strict=True))
        more = ""
        if spare:  # a day's new listings of known products: ~9% more photos, none embedded before
            new = [q | {"id": f"new-{q['id']}", "role": "catalog"}
                   for q in spare[: max(1, int(photos * LEARN.refit_growth * 0.9))]]
            start = time.perf_counter()
            report = index.add_listings(new, embedding.embed, load_policy(), workers=embedding.workers,
                                        views=embedding.views)
            added = time.perf_counter() - start
            how = "projected by the model" if report.extended else "refitted"
            more = f", then {report.added} new photos ({how}) {report.added / added:5.1f}"
        print(f"   {name:26s} network {network:6.1f} photos/s, indexing with the fit {photos / took:5.1f}{more}"
              f"   identical@1 {scores['identical@1']:.3f}"
              f"   category {category:.3f}")


def rows(path: Path, role: str) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("role", "catalog") == role and row.get("images"):
            row["images"] = [str((path.parent / p).resolve()) for p in row["images"]]
            out.append(row)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listings", type=Path, default=ROOT / "samples" / "grocery" / "listings.jsonl")
    p.add_argument("--queries", type=Path, default=ROOT / "samples" / "grocery" / "queries.jsonl")
    p.add_argument("--limit", type=int, default=60, help="query rows scored per embedder (default: 60)")
    p.add_argument("--runs", type=int, default=3, help="cold runs per row (default: 3)")
    p.add_argument("--warm", type=int, default=12, help="photos of the warm listing (default: 12)")
    args = p.parse_args()
    catalog, queries = rows(args.listings, "catalog"), rows(args.queries, "query")
    known = {r.get("category") for r in catalog}
    queries = [q for q in queries if q.get("category") in known]  # categories the catalog has
    step = max(1, len(queries) // (args.limit + 3 * args.runs + args.warm + 1))
    spare = queries[1::step] if step > 1 else []  # photos no listing below uses: new catalog listings
    queries = queries[::step]  # spread over the categories
    photos = [r["images"][0] for r in queries]
    with tempfile.TemporaryDirectory(prefix="ipl-bench-") as tmp:
        index = str(Path(tmp) / EMBEDDERS[0])
        index_and_score(catalog, queries[: args.limit], Path(tmp), spare)
        new_rows = []
        for run in range(args.runs):  # one new listing a run: `ipl index` adds it, then starts the worker
            new_rows.append(Path(tmp) / f"new-{run}.jsonl")
            new_rows[-1].write_text(json.dumps(catalog[run] | {"id": f"new-{run}-{catalog[run]['id']}"}) + "\n")
        cold(photos[-3 * args.runs :], index, args.runs, new_rows)
        warm(photos[-3 * args.runs - args.warm - 1 : -3 * args.runs], index)


if __name__ == "__main__":
    main()
