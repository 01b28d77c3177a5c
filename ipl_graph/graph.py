"""The photo-to-listing graph: wiring and routers only. Nodes live in `tools/`.

check_safety -> search_similar -> categorize -> gate_matches -> extract_attributes -> fetch_template
-> write_* -> generate -> moderate_stream -> truncate -> score_quality. An unsafe photo (or a
prohibited category) ends the run with guidance. A catalog that cannot be searched degrades the run
to image-only writing, `degraded` naming why. After the template, the writing is picked by what the
run found: references that passed the SPU gate, else the category's template (a category that is
not confident gets the generic one), else the photos alone. A failed or slow generator leaves a
manual draft (generate); so no retry policy: the OpenAI client retries a dropped connection itself.
Gate or no gate, attribute extraction runs: OCR and pixels are evidence too. With the Context's
`confirm`, confirm_attributes interrupts after extract_attributes so the seller confirms or edits
(needs a checkpointer: the LangGraph server's, or compile `builder` with one).
"""

from __future__ import annotations

from typing import Literal

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from ipl_graph.context import Context
from ipl_graph.state import InputState, OutputState, State
from ipl_tools.categorize import categorize
from ipl_tools.check_safety import check_safety
from ipl_tools.confirm_attributes import confirm_attributes
from ipl_tools.extract_attributes import extract_attributes
from ipl_tools.fetch_template import fetch_template
from ipl_tools.gate_matches import gate_matches
from ipl_tools.generate import generate, write_from_photos, write_from_template, write_with_references
from ipl_tools.moderate_stream import moderate_stream
from ipl_tools.score_quality import score_quality
from ipl_tools.search_similar import search_similar
from ipl_tools.truncate import truncate

Writer = Literal["write_from_photos", "write_from_template", "write_with_references"]


def safe(state: State) -> bool:
    return state.safety is not None and state.safety.safe


def route_after_check_safety(state: State) -> Literal["search_similar", "__end__"]:
    return "search_similar" if safe(state) else "__end__"


def route_after_search_similar(state: State) -> Literal["categorize", "write_from_photos"]:
    """A catalog that could not be searched (`degraded` says why) leaves the photos alone to write from."""
    return "write_from_photos" if state.degraded else "categorize"


def route_after_categorize(state: State) -> Literal["gate_matches", "__end__"]:
    return "gate_matches" if safe(state) else "__end__"


def route_after_extract_attributes(
    state: State, runtime: Runtime[Context]
) -> Literal["confirm_attributes", "fetch_template"]:
    return "confirm_attributes" if runtime.context.confirm else "fetch_template"


def route_after_confirm_attributes(state: State) -> Literal["fetch_template", "__end__"]:
    return "fetch_template" if safe(state) else "__end__"


def route_after_fetch_template(state: State) -> Writer:
    """Decided after the seller's edits (which may name the category): trusted references, else a
    known category's template, else the photos alone."""
    if state.trusted:
        return "write_with_references"
    return "write_from_template" if state.category else "write_from_photos"


builder = StateGraph(State, context_schema=Context, input_schema=InputState, output_schema=OutputState)
builder.add_node(check_safety)
builder.add_node(search_similar)
builder.add_node(categorize)
builder.add_node(gate_matches)
builder.add_node(extract_attributes)
builder.add_node(confirm_attributes)
builder.add_node(fetch_template)
builder.add_node(write_from_photos)
builder.add_node(write_from_template)
builder.add_node(write_with_references)
builder.add_node(generate)
builder.add_node(moderate_stream)
builder.add_node(truncate)
builder.add_node(score_quality)

builder.add_edge(START, "check_safety")
builder.add_conditional_edges("check_safety", route_after_check_safety)
builder.add_conditional_edges("search_similar", route_after_search_similar)
builder.add_conditional_edges("categorize", route_after_categorize)
builder.add_edge("gate_matches", "extract_attributes")
builder.add_conditional_edges("extract_attributes", route_after_extract_attributes)
builder.add_conditional_edges("confirm_attributes", route_after_confirm_attributes)
builder.add_conditional_edges("fetch_template", route_after_fetch_template)
for writer in ("write_from_photos", "write_from_template", "write_with_references"):
    builder.add_edge(writer, "generate")
builder.add_edge("generate", "moderate_stream")
builder.add_edge("moderate_stream", "truncate")
builder.add_edge("truncate", "score_quality")
builder.add_edge("score_quality", END)

graph = builder.compile()
graph.name = "listing"
