"""Load check (not a test): N listings at concurrency C against a local IPL server, on loopback.

Each listing is what the seller page does: upload a photo, create a thread, stream a run (updates and
messages) to its end. Prints throughput, p50/p95 latency and errors (which should be 0).

    python scripts/load.py --index .ipl-index                  # starts its own server, stops it after
    python scripts/load.py --url http://127.0.0.1:8123          # against a running `ipl serve`
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import time
from pathlib import Path

import httpx
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = sorted((ROOT / "samples" / "grocery" / "queries").glob("*.jpg"))


async def one_listing(http: httpx.AsyncClient, client: LangGraphClient, photo: Path, timeout_s: float) -> float:
    """Seconds from upload to the listing's last update; raises on any failure."""
    started = time.perf_counter()
    response = await http.post("/ipl/photos", content=photo.read_bytes(), headers={"content-type": "image/jpeg"})
    response.raise_for_status()
    thread = await client.threads.create()
    inputs = {"photos": [response.json()["photo"]]}
    final: dict = {}
    async with asyncio.timeout(timeout_s):
        async for part in client.runs.stream(thread["thread_id"], "listing", input=inputs,
                                             stream_mode=["updates", "messages"]):
            if part.event == "error":
                raise RuntimeError(f"run error: {part.data}")
            if part.event == "updates":
                final.update(part.data)
    if "truncate" not in final or not final["truncate"].get("description"):
        raise RuntimeError(f"no listing written (last steps: {list(final)})")
    return time.perf_counter() - started


async def load(url: str, total: int, concurrency: int, timeout_s: float) -> int:
    photos = itertools.cycle(PHOTOS)
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors: list[str] = []

    client = get_client(url=url, timeout=timeout_s)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s) as http:
        await one_listing(http, client, PHOTOS[0], timeout_s)  # warm-up: models load on the first run

        async def bounded(photo: Path) -> None:
            async with gate:
                try:
                    latencies.append(await one_listing(http, client, photo, timeout_s))
                except Exception as exc:  # counted and reported, the load goes on
                    errors.append(f"{photo.name}: {type(exc).__name__}: {exc}"[:300])

        started = time.perf_counter()
        await asyncio.gather(*(bounded(next(photos)) for _ in range(total)))
        elapsed = time.perf_counter() - started
        still_up = (await http.get("/ok")).status_code == 200

    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    print(f"listings {total}, concurrency {concurrency}, wall {elapsed:.1f} s")
    print(f"throughput {len(latencies) / elapsed:.2f} listings/s")
    if latencies:
        print(f"latency p50 {q[49]:.2f} s, p95 {q[94]:.2f} s, max {max(latencies):.2f} s")
    print(f"errors {len(errors)}; server still up: {still_up}")
    for line in errors[:10]:
        print("  " + line)
    return 1 if errors or not still_up else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="a running server (default: start one on a free loopback port)")
    p.add_argument("--index", default=".ipl-index", help="index for the server this script starts")
    p.add_argument("-n", "--listings", type=int, default=200)
    p.add_argument("-c", "--concurrency", type=int, default=8)
    p.add_argument("--timeout", type=float, default=300.0, help="seconds one listing may take")
    args = p.parse_args()
    if args.url:
        if not args.url.startswith(("http://127.0.0.1", "http://localhost")):
            p.error("--url must be a loopback address")
        return asyncio.run(load(args.url, args.listings, args.concurrency, args.timeout))

    from ipl_graph.face.serve import running

    with running(args.index, config=str(ROOT / "langgraph.json")) as url:
        print(f"server {url} (index {args.index})", file=sys.stderr)
        return asyncio.run(load(url, args.listings, args.concurrency, args.timeout))


if __name__ == "__main__":
    sys.exit(main())
