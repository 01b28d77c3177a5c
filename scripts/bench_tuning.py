"""Benchmark the tuning pipeline and print its figures:

- `ipl sft-data`: listings/s over the given listings files (without an index, and with one when
  `--index` is given: the photo-text consistency rule and the references then run too);
- `ipl tune` on the tiny Qwen2-VL (built from a config): samples/s and the peak memory of the
  training process (RSS on CPU; on a GPU also torch's peak allocation), full fine-tuning and LoRA;
- where a GPU is present, the same short run on it (bf16).

    python scripts/bench_tuning.py [--listings A.jsonl B.jsonl] [--index DIR] [--steps 20] [--batch 4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tiny_vlm
SHARED = ROOT.parent / "shared" / "data"
DEFAULT = [str(SHARED / "fashion" / "listings.jsonl"), str(SHARED / "grocery" / "listings.jsonl")]


def bench_sft_data(listings: list[str], index: str | None, out: str) -> dict:
    from ipl_tools.tuning.sft_data import build

    started = time.perf_counter()
    report = build(listings, out, index)
    seconds = time.perf_counter() - started
    return {"rows": report["rows_in"], "seconds": round(seconds, 1),
            "listings_per_s": round(report["rows_in"] / seconds), "records": report["records"],
            "dropped": {s["name"]: s["dropped"] for s in report["steps"]}}


def _train(data: str, base: str, out: str, steps: int, batch: int, lora: bool, queue) -> None:
    import torch

    from ipl_tools.tuning.tune import TuneConfig, tune

    torch.set_num_threads(2)
    config = TuneConfig(learning_rate=1e-3, max_steps=steps, global_batch=batch, micro_batch=batch, lora=lora,
                        lora_rank=8, lora_alpha=16, quiet=True)
    summary = tune(data, base, out, config)
    gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # this process's peak, MiB
    queue.put({**{k: summary[k] for k in ("device", "dtype", "steps", "samples_per_s", "first_loss", "last_loss",
                                          "trainable_params")}, "peak_rss_mib": round(rss), "gpu_peak_mib": gpu})


def bench_tune(data: str, base: str, out: str, steps: int, batch: int, lora: bool) -> dict:
    """One training run in a fresh process, so that its peak RSS is its own."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_train, args=(data, base, out, steps, batch, lora, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


def main() -> int:
    from ipl_graph import taming

    taming.apply()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listings", nargs="+", default=DEFAULT)
    p.add_argument("--index", help="catalog index for the photo-text rule and references")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=4)
    args = p.parse_args()
    import torch

    from tiny_vlm import build as build_tiny  # tests/tiny_vlm.py: a test fixture, not in the wheel

    with tempfile.TemporaryDirectory(prefix="ipl-bench-tune-") as tmp:
        figures: dict = {"sft_data": bench_sft_data(args.listings, None, f"{tmp}/data")}
        print("sft-data, no index:", json.dumps(figures["sft_data"]), flush=True)
        if args.index:
            figures["sft_data_index"] = bench_sft_data(args.listings, args.index, f"{tmp}/data-index")
            print("sft-data, with index:", json.dumps(figures["sft_data_index"]), flush=True)
        base = str(build_tiny(f"{tmp}/tiny"))
        data = f"{tmp}/data/train.jsonl"
        for name, lora in (("tune_lora", True), ("tune_full", False)):
            figures[name] = bench_tune(data, base, f"{tmp}/{name}", args.steps, args.batch, lora)
            print(f"{name} (tiny Qwen2-VL, {figures[name]['device']}):", json.dumps(figures[name]), flush=True)
        if not torch.cuda.is_available():
            print("GPU run: skipped (no GPU on this machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
