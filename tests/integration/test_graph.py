"""The whole graph on the sample catalog: topology, every conditional edge and every degraded path."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fakes import FailingChatModel, HangingChatModel, generator_plugin
from helpers import QUERIES, write_policy
from ipl_graph import plugins
from ipl_graph.context import Context
from ipl_graph.graph import (
    graph,
    route_after_categorize,
    route_after_check_safety,
    route_after_fetch_template,
    route_after_search_similar,
)
from ipl_graph.schemas import Neighbour, SafetyVerdict
from ipl_graph.state import State

SNAPSHOT = Path(__file__).resolve().parents[1] / "snapshots" / "graph.mmd"
BANANA = str(QUERIES / "Banana_001.jpg")
JUICE = str(QUERIES / "Bravo-Apple-Juice_001.jpg")


def test_topology_matches_snapshot():
    drawn = graph.get_graph().draw_mermaid()
    assert drawn == SNAPSHOT.read_text(), "graph changed: regenerate tests/snapshots/graph.mmd if intended"


def test_routers_are_pure_functions_of_state():
    safe, unsafe = SafetyVerdict(safe=True), SafetyVerdict(safe=False)
    assert route_after_check_safety(State(safety=safe)) == "search_similar"
    assert route_after_check_safety(State(safety=unsafe)) == "__end__"
    assert route_after_search_similar(State(safety=safe)) == "categorize"
    assert route_after_search_similar(State(safety=safe, degraded="catalog search failed")) == "write_from_photos"
    assert route_after_categorize(State(safety=safe)) == "gate_matches"
    assert route_after_categorize(State(safety=unsafe)) == "__end__"
    ref = Neighbour(id="a", similarity=0.9)
    assert route_after_fetch_template(State(category="Banana", trusted=[ref])) == "write_with_references"
    assert route_after_fetch_template(State(category="Banana")) == "write_from_template"
    assert route_after_fetch_template(State()) == "write_from_photos"


def nodes_run(inputs: dict, ctx: Context) -> tuple[list[str], dict]:
    steps = list(graph.stream(inputs, context=ctx, stream_mode="updates"))
    final = graph.invoke(inputs, context=ctx)
    return [next(iter(s)) for s in steps], final


def test_happy_path_runs_all_nine_nodes(ctx):
    order, listing = nodes_run({"photos": [BANANA], "hint": "bought yesterday"}, ctx)
    assert order == ["check_safety", "search_similar", "categorize", "gate_matches", "extract_attributes",
                     "fetch_template", "write_with_references", "generate", "moderate_stream", "truncate",
                     "score_quality"]
    assert listing["category"] == "Banana" and listing["degraded"] is None
    assert "bought yesterday" in listing["description"].lower()  # the hint's own words, where they belong
    assert listing["title"]


def test_unsafe_photo_ends_with_guidance(ctx):
    order, listing = nodes_run({"photos": [BANANA], "hint": "selling cannabis"}, ctx)
    assert order == ["check_safety"]
    assert listing["safety"].safe is False and listing["degraded"] == "unsafe"
    assert "retake" in listing["description"]


@pytest.mark.parametrize("spu_gate, mode", [(1.0, "image_only"), (0.0, "image_template_refs")])
def test_no_confident_category_uses_generic_template(ctx, tmp_path, spu_gate, mode):
    """No category either way; the gate alone decides whether references join (closed: none can)."""
    policy = write_policy(tmp_path, thresholds={"category_min_confidence": 1.0, "spu_gate": spu_gate})
    abstain = Context(index_dir=ctx.index_dir, policy=policy)
    steps = list(graph.stream({"photos": [JUICE]}, context=abstain, stream_mode="values"))
    assert steps[-1]["category"] is None and steps[-1]["template"].generic is True
    assert steps[-1]["mode"] == mode


def test_no_hit_through_the_gate_means_image_only_generation(ctx, tmp_path):
    closed = Context(index_dir=ctx.index_dir, policy=write_policy(tmp_path, thresholds={"spu_gate": 1.0}))
    final = list(graph.stream({"photos": [BANANA]}, context=closed, stream_mode="values"))[-1]
    assert final["references"] == [] and final["trusted"] == []
    assert final["mode"] == "image_template"  # category known, no references
    opened = Context(index_dir=ctx.index_dir, policy=write_policy(tmp_path, thresholds={"spu_gate": 0.5}))
    final = list(graph.stream({"photos": [BANANA]}, context=opened, stream_mode="values"))[-1]
    assert final["references"] and final["mode"] == "image_template_refs"
    assert final["title"] == final["trusted"][0].title


@pytest.fixture
def failing_generators():
    plugins_ = generator_plugin(broken=lambda: FailingChatModel.saying(""),
                                slow=lambda: HangingChatModel.saying("late"))
    name = plugins.register(plugins_, name="test-failing")
    yield
    plugins.unregister(name)


@pytest.mark.parametrize("generator, reason", [("broken", "ConnectionResetError"), ("slow", "TimeoutError")])
def test_generator_failure_leaves_a_manual_draft(ctx, failing_generators, generator, reason):
    run = Context(index_dir=ctx.index_dir, generator=generator, generate_timeout_s=0.5)
    started = time.monotonic()
    listing = graph.invoke({"photos": [BANANA], "hint": "ripe"}, context=run)
    assert time.monotonic() - started < 4.5
    assert reason in listing["degraded"] and "edit by hand" in listing["degraded"]
    assert "ripe" in listing["description"]  # the draft is built from what is known


def test_unknown_backend_lists_the_known_ones(ctx):
    from ipl_graph.errors import UnknownBackendError

    with pytest.raises(UnknownBackendError, match="known: .*template"):
        graph.invoke({"photos": [BANANA]}, context=Context(index_dir=ctx.index_dir, generator="gpt-17"))


def test_messages_stream_carries_the_generated_tokens(ctx):
    tokens = [
        chunk.content
        for chunk, meta in graph.stream({"photos": [BANANA]}, context=ctx, stream_mode="messages")
        if meta["langgraph_node"] == "generate"
    ]
    assert len(tokens) > 5
    assert "".join(tokens).strip() == graph.invoke({"photos": [BANANA]}, context=ctx)["description"]


def test_readme_shows_the_current_graph():
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("update_readme_graph", root / "scripts" / "update_readme_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() in (root / "README.md").read_text(), "run python scripts/update_readme_graph.py"
