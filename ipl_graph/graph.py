"""The photo-to-listing graph: wiring and routers only. Nodes live in `tools/`.

check_safety -> categorize -> search_similar -> gate_matches -> extract_attributes -> fetch_template
-> generate -> moderate_stream -> truncate -> score_quality. An unsafe photo ends the run with
guidance; a category that is not confident gets the generic template (fetch_template); no hit through the gate means
image-only generation (generate picks the instruction); a failed or slow generator leaves a manual
draft (generate). Gate or no gate, attribute extraction runs: OCR and pixels are evidence too.
With the Context's `confirm`, confirm_attributes interrupts after extract_attributes so the seller
confirms or edits (needs a checkpointer: the LangGraph server's, or compile `builder` with one).
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy

from ipl_graph.context import Context
from ipl_graph.state import InputState, OutputState, State
from ipl_tools.attributes import extract_attributes
from ipl_tools.categorize import categorize
from ipl_tools.confirm import confirm_attributes
from ipl_tools.gate import gate_matches
from ipl_tools.generate import generate
from ipl_tools.moderation import moderate_stream
from ipl_tools.quality import score_quality
from ipl_tools.safety import check_safety
from ipl_tools.search import search_similar
from ipl_tools.template import fetch_template
from ipl_tools.truncate import truncate


def route_after_check_safety(state: State) -> Literal["categorize", "__end__"]:
    return "categorize" if state.safety and state.safety["safe"] else "__end__"


def route_after_categorize(state: State) -> Literal["search_similar", "__end__"]:
    return "search_similar" if state.safety and state.safety["safe"] else "__end__"


def route_after_extract_attributes(
    state: State, runtime: Runtime[Context]
) -> Literal["confirm_attributes", "fetch_template"]:
    return "confirm_attributes" if runtime.context.confirm else "fetch_template"


def route_after_confirm_attributes(state: State) -> Literal["fetch_template", "__end__"]:
    return "fetch_template" if state.safety and state.safety["safe"] else "__end__"


builder = StateGraph(State, context_schema=Context, input_schema=InputState, output_schema=OutputState)
builder.add_node(check_safety)
builder.add_node(categorize)
builder.add_node(search_similar)
builder.add_node(gate_matches)
builder.add_node(extract_attributes)
builder.add_node(confirm_attributes)
builder.add_node(fetch_template)
builder.add_node(generate, retry_policy=RetryPolicy(max_attempts=2, retry_on=ConnectionError))
builder.add_node(moderate_stream)
builder.add_node(truncate)
builder.add_node(score_quality)

builder.add_edge(START, "check_safety")
builder.add_conditional_edges("check_safety", route_after_check_safety)
builder.add_conditional_edges("categorize", route_after_categorize)
builder.add_edge("search_similar", "gate_matches")
builder.add_edge("gate_matches", "extract_attributes")
builder.add_conditional_edges("extract_attributes", route_after_extract_attributes)
builder.add_conditional_edges("confirm_attributes", route_after_confirm_attributes)
builder.add_edge("fetch_template", "generate")
builder.add_edge("generate", "moderate_stream")
builder.add_edge("moderate_stream", "truncate")
builder.add_edge("truncate", "score_quality")
builder.add_edge("score_quality", END)

graph = builder.compile()
graph.name = "listing"
