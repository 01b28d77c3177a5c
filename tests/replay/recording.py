"""Record graph runs as JSONL (`stream_mode="updates"`) with every backend call they made, and read them back.

Line 1 is a header: {"inputs", "context", "versions"}; every further line is one step,
{"node": name, "calls": [...], "update": {...}}: the backend calls the node made, in order, with what
each returned (`traces.py`), then the update it returned. Paths under the repository are stored as
`<root>/...` so a recording replays from any checkout. Recording runs the real models on the sample
catalog; re-record all cases with `python tests/replay/recording.py` (or some: name them) after an
intended behaviour change, and review the diff of the updates.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[2]
RECORDINGS = Path(__file__).resolve().parent / "recordings"
PACKAGES = ["ipl", "langgraph", "langchain-core", "chromadb", "onnxruntime", "rapidocr-onnxruntime"]

# name -> (inputs, context overrides): the runs the replay tests pin down.
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "banana_en": ({"photos": ["<root>/samples/grocery/queries/Banana_001.jpg"], "hint": "ripe, from my garden"}, {}),
    "juice_zh": ({"photos": ["<root>/samples/grocery/queries/Bravo-Apple-Juice_001.jpg"], "lang": "zh"}, {}),
    "two_photos_milk": (
        {"photos": ["<root>/samples/grocery/queries/Arla-Standard-Milk_001.jpg",
                    "<root>/samples/grocery/queries/Oatly-Oat-Milk_001.jpg"], "hint": "unopened"},
        {},
    ),
    "unsafe_hint": ({"photos": ["<root>/samples/grocery/queries/Granny-Smith_001.jpg"], "hint": "with ammunition"}, {}),
}


def relativise(value: Any) -> Any:
    text = json.dumps(value, ensure_ascii=False).replace(str(ROOT), "<root>")
    return json.loads(text)


def absolutise(value: Any) -> Any:
    return json.loads(json.dumps(value, ensure_ascii=False).replace("<root>", str(ROOT)))


def versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in PACKAGES}


def record(name: str, index_dir: str) -> Path:
    from ipl_graph.context import Context
    from ipl_graph.graph import graph
    from ipl_graph.state import plain
    from traces import store_calls, tracing

    inputs, overrides = CASES[name]
    context = Context(index_dir=index_dir, **overrides)
    header = {"inputs": inputs, "context": {**dataclasses.asdict(context), "index_dir": "<sample-index>"},
              "versions": versions()}
    with tracing() as trace:
        updates = [next(iter(step.items())) for step in graph.stream(absolutise(inputs), context=context,
                                                                       stream_mode="updates")]
    lines, rest = [header], trace.calls
    for node, update in updates:  # each node's calls, in the order the steps ran
        mine = next((i for i, c in enumerate(rest) if c["node"] != node), len(rest))
        calls = [{k: v for k, v in c.items() if k != "node"} for c in rest[:mine]]
        lines.append({"node": node, "calls": store_calls(calls), "update": relativise(plain(update))})
        rest = rest[mine:]
    assert not rest, f"backend calls no step accounts for: {rest[:2]}"
    RECORDINGS.mkdir(exist_ok=True)
    path = RECORDINGS / f"{name}.jsonl"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


class Step(NamedTuple):
    node: str
    calls: list[dict[str, Any]]
    """The backend calls the node made (each with its `node`), as `traces.replaying` takes them."""
    update: dict[str, Any]


def load(path: Path) -> tuple[dict[str, Any], list[Step]]:
    from traces import load_calls

    header, *steps = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    return header, [Step(s["node"], load_calls([{"node": s["node"], **c} for c in s["calls"]]),
                         absolutise(s["update"])) for s in steps]


def build_sample_index(directory: str) -> str:
    from ipl_tools.catalog.index import build_catalog, read_listings

    build_catalog(directory, read_listings(ROOT / "samples" / "grocery" / "listings.jsonl"))
    return directory


if __name__ == "__main__":
    from ipl_graph import taming

    taming.apply()
    with tempfile.TemporaryDirectory() as tmp:
        index = build_sample_index(tmp)
        for case in sys.argv[1:] or CASES:
            print(record(case, index))
