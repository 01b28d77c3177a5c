"""Recorded runs replayed on their recorded backend outputs alone, at graph level and node by node.

Every backend the nodes ask for (OCR, nudity detector, searcher with its embedder and learned
model, generator) is served from the recording's trace (`traces.py`): no model loads, the index
folder does not exist, and building a backend of a recorded kind fails the test. Each node must make
the recorded calls, in order and with the recorded arguments, and return the recorded update (the
golden output), so a change to any node's logic fails here. Categorizer and extractor, rules over
the backends' outputs, run for real. Re-record with `python tests/replay/recording.py`.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any

import pytest

from helpers import runtime
from ipl_graph import plugins
from ipl_graph.context import Context
from ipl_graph.graph import builder, graph
from ipl_graph.state import State, plain, updated
from recording import CASES, RECORDINGS, absolutise, load
from traces import Replayed, ReplayMismatch, replaying

RECORDED = sorted(p.stem for p in RECORDINGS.glob("*.jsonl"))


def test_every_recording_is_replayed_and_every_case_recorded():
    assert sorted(CASES) == RECORDED, "recordings and CASES differ: add the case or remove the stale file"


def same(recorded: Any, replayed: Any, where: str = "") -> None:
    """Equal, with floats to 1e-9 (numeric code on the recorded arrays may differ in the last bits
    between machines)."""
    if isinstance(recorded, float) or isinstance(replayed, float):
        assert math.isclose(recorded, replayed, abs_tol=1e-9), f"{where}: {recorded} != {replayed}"
    elif isinstance(recorded, dict):
        assert isinstance(replayed, dict) and recorded.keys() == replayed.keys(), f"{where}: keys differ"
        for key in recorded:
            same(recorded[key], replayed[key], f"{where}.{key}")
    elif isinstance(recorded, list):
        assert isinstance(replayed, list) and len(recorded) == len(replayed), f"{where}: lengths differ"
        for i, (a, b) in enumerate(zip(recorded, replayed, strict=True)):
            same(a, b, f"{where}[{i}]")
    else:
        assert recorded == replayed, f"{where}: {recorded!r} != {replayed!r}"


@pytest.fixture
def no_index(tmp_path) -> str:
    """An index folder that is not there: a replay that opened the catalog would fail."""
    return str(tmp_path / "no-index")


@pytest.fixture
def no_catalog(monkeypatch):
    """Opening a catalog fails the test, whatever path a node takes to it."""
    from ipl_tools.catalog import index

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a replay opened the catalog index")

    monkeypatch.setattr(index.Catalog, "__init__", refuse)


def context_of(header: dict[str, Any], index_dir: str) -> Context:
    return Context(**{**header["context"], "index_dir": index_dir})


@pytest.mark.parametrize("name", RECORDED)
def test_graph_replay(name, no_index, no_catalog):
    header, steps = load(RECORDINGS / f"{name}.jsonl")
    context = context_of(header, no_index)
    with replaying([call for step in steps for call in step.calls]) as replay:
        assert isinstance(plugins.get("searcher", context.searcher, context.index_dir, context.embedder), Replayed)
        replayed = list(graph.stream(absolutise(header["inputs"]), context=context, stream_mode="updates"))
    assert not replay.failures, replay.failures[0]
    assert [next(iter(s)) for s in replayed] == [s.node for s in steps]
    for step, got in zip(steps, replayed, strict=True):
        same(step.update, plain(got[step.node]), f"{name}:{step.node}")
    assert replay.done, f"{name}: recorded calls left over from call {replay.next} on"


@pytest.mark.parametrize("name", RECORDED)
def test_node_replay(name, no_index, no_catalog):
    header, steps = load(RECORDINGS / f"{name}.jsonl")
    context = context_of(header, no_index)
    state = State(**absolutise(header["inputs"]))
    for step in steps:
        fn = builder.nodes[step.node].runnable.func  # the plain node function, called as the graph calls it
        with replaying(step.calls, check_node=False) as replay:
            takes_runtime = len(inspect.signature(fn).parameters) > 1  # the write_* nodes read state alone
            update = fn(state, runtime(context)) if takes_runtime else fn(state)
        assert not replay.failures, f"{name}:{step.node}: {replay.failures[0]}"
        same(step.update, plain(update), f"{name}:{step.node}")
        assert replay.done, f"{name}:{step.node}: recorded calls left over from call {replay.next} on"
        state = updated(state, step.update)


def test_a_change_to_what_a_node_asks_a_backend_fails_the_replay(no_index, no_catalog):
    """Same node, other arguments (a larger k): the trace has no such call."""
    header, steps = load(RECORDINGS / "banana_en.jsonl")
    context = dataclasses.replace(context_of(header, no_index), top_k=header["context"]["top_k"] + 1)
    with replaying([call for step in steps for call in step.calls]), pytest.raises(ReplayMismatch, match="search"):
        graph.invoke(absolutise(header["inputs"]), context=context)
