"""gate_matches: the SPU gate. Only a top hit that is probably the identical product is trusted.

The index calibrated, on held-out catalog photos, how likely the top hit is the identical product
given its score and its lead over the next product (`catalog/fit.py`); the policy's `spu_gate` is the
probability a hit needs. Other hits of the same product (`spu`) join it, up to `max_references`.
A catalog without spu groups cannot say what is identical, so nothing passes there.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from ipl_graph.context import Context
from ipl_graph.policies import load_policy
from ipl_graph.schemas import Neighbour
from ipl_graph.state import State
from ipl_tools.search_similar import searcher_for


def trusted_of(neighbours: list[Neighbour], probability: float, gate: float, max_references: int) -> list[Neighbour]:
    if not neighbours or probability < gate:
        return []
    top = neighbours[0]
    same = [n for n in neighbours[1:] if top.spu and n.spu == top.spu]
    return [top, *same][:max_references]


def gate_matches(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    thresholds = load_policy(runtime.context.policy).thresholds
    probability = searcher_for(runtime).identity(state.neighbours)
    trusted = trusted_of(state.neighbours, probability, thresholds.spu_gate, thresholds.max_references)
    return {
        "trusted": trusted,
        "references": [{"id": n.id, "similarity": n.similarity} for n in trusted],
    }
