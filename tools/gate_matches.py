"""gate_matches: the SPU gate. Only a top hit that is probably the identical product is trusted.

The index calibrated, on held-out catalog photos, how likely the top hit is the identical product
given its score and its lead over the next product (`catalog/fit.py`); the policy's `spu_gate` is the
probability a hit needs. Other hits of the same product (`spu`) join it, up to `max_references`.
A catalog without spu groups cannot say what is identical, so nothing passes there.
Nor does a top hit the photos' own text contradicts: a word read on the pack that names some catalog
product but not this one ('apple' on a carton whose top hit is the brand's orange juice). Siblings of
one brand look alike, and a product the catalog lacks looks most like its sibling; the pack's text
tells them apart.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from ipl_graph.context import Context
from ipl_graph.policies import load_policy
from ipl_graph.schemas import Neighbour
from ipl_graph.state import State
from ipl_tools.catalog.text import clashes, naming_text
from ipl_tools.search_similar import searcher_for


def trusted_of(neighbours: list[Neighbour], probability: float, gate: float, max_references: int) -> list[Neighbour]:
    if not neighbours or probability < gate:
        return []
    top = neighbours[0]
    same = [n for n in neighbours[1:] if top.spu and n.spu == top.spu]
    return [top, *same][:max_references]


def contradicted(top: Neighbour, read: list[str], words: dict[str, int]) -> set[str]:
    """The words read on the photos that name another catalog product and not the top hit."""
    names = naming_text({"title": top.title, "attributes": top.attributes, "category": top.category,
                         "category_path": top.category_path})
    return clashes(read, names, words)


def gate_matches(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    thresholds = load_policy(runtime.context.policy).thresholds
    searcher = searcher_for(runtime)
    probability = searcher.identity(state.neighbours)
    trusted = trusted_of(state.neighbours, probability, thresholds.spu_gate, thresholds.max_references)
    model = searcher.calibration
    if trusted and model is not None and contradicted(trusted[0], state.ocr_text, model.words):
        trusted = []
    return {
        "trusted": trusted,
        "references": [{"id": n.id, "similarity": n.similarity} for n in trusted],
    }
