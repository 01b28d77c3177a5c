"""Recorded runs replayed at graph level and node by node.

Graph level: the real graph runs again on the recorded inputs and Context, with the generator
replaced by a replay plugin that streams the recorded text (so a run recorded with a remote model
replays offline), and every step must match the recording. Node level: each node is called on the
state rebuilt from the recording up to its step and must return the recorded update.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from recording import CASES, RECORDINGS, load

from helpers import runtime
from ipl_graph import plugins
from ipl_graph.context import Context
from ipl_graph.graph import builder, graph
from ipl_graph.hookspecs import hookimpl
from ipl_graph.state import State

RECORDED = sorted(p.stem for p in RECORDINGS.glob("*.jsonl"))


def test_every_recording_is_replayed_and_every_case_recorded():
    assert sorted(CASES) == RECORDED, "recordings and CASES differ: add the case or remove the stale file"


def same(recorded: Any, replayed: Any, where: str = "") -> None:
    """Equal, with floats compared to 1e-3 (embeddings differ in the last bits across CPUs)."""
    if isinstance(recorded, float) or isinstance(replayed, float):
        assert math.isclose(recorded, replayed, abs_tol=1e-3), f"{where}: {recorded} != {replayed}"
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


class ReplayModel(BaseChatModel):
    """Streams a recorded reply word by word: stands in for whatever model made the recording."""

    text: str

    @property
    def _llm_type(self) -> str:
        return "ipl-replay"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.text))])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs) -> Iterator[ChatGenerationChunk]:
        for i in range(0, len(self.text), 4):
            yield ChatGenerationChunk(message=AIMessageChunk(content=self.text[i : i + 4]))


class ReplayPlugin:
    def __init__(self, text: str) -> None:
        self.text = text

    @hookimpl
    def register_generators(self, register):
        register("replay", lambda model, base_url: ReplayModel(text=self.text))


def context_of(header: dict[str, Any], index_dir: str, **changes: Any) -> Context:
    return Context(**{**header["context"], "index_dir": index_dir, **changes})


@pytest.mark.parametrize("name", RECORDED)
def test_graph_replay(name, sample_index):
    header, steps = load(RECORDINGS / f"{name}.jsonl")
    generated = next((u["description"] for n, u in steps if n == "generate"), "")
    plugin = plugins.register(ReplayPlugin(generated), name="replay")
    try:
        context = context_of(header, sample_index, generator="replay")
        replayed = list(graph.stream(_inputs(header), context=context, stream_mode="updates"))
    finally:
        plugins.unregister(plugin)
    assert [next(iter(s)) for s in replayed] == [n for n, _ in steps]
    for (node, update), step in zip(steps, replayed, strict=True):
        if node == "generate":
            update = {**update, "generator": "replay"}
        same(update, step[node], f"{name}:{node}")


@pytest.mark.parametrize("name", RECORDED)
def test_node_replay(name, sample_index):
    header, steps = load(RECORDINGS / f"{name}.jsonl")
    context = context_of(header, sample_index)
    nodes = builder.nodes
    state = State(**_inputs(header))
    for node, update in steps:
        fn = nodes[node].runnable.func  # the plain node function, called as the graph calls it
        same(update, fn(state, runtime(context)), f"{name}:{node}")
        state = dataclasses.replace(state, **update)


def _inputs(header: dict[str, Any]) -> dict[str, Any]:
    from recording import absolutise

    return absolutise(header["inputs"])

