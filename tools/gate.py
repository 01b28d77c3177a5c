"""gate_matches: the SPU gate. Only a top hit that is probably the identical product is trusted.

The index calibrated, on held-out catalog photos, how likely the top hit is the identical product
given its score and its lead over the next product (`learn.py`); the policy's `spu_gate` is the
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
from ipl_tools.search import searcher_for


def identity(model: Any, neighbours: list[Neighbour]) -> float:
    """P(the top hit is the identical product), from its score and its lead over the next product."""
    if not neighbours:
        return 0.0
    top = neighbours[0].similarity
    runner_up = max((n.similarity for n in neighbours[1:]), default=0.0)
    return float(model.identity_probability(top, top - runner_up))


def trusted_of(neighbours: list[Neighbour], probability: float, gate: float, max_references: int) -> list[Neighbour]:
    if not neighbours or probability < gate:
        return []
    top = neighbours[0]
    same = [n for n in neighbours[1:] if top.spu and n.spu == top.spu]
    return [top, *same][:max_references]


def gate_matches(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    thresholds = load_policy(runtime.context.policy).thresholds
    neighbours = [Neighbour.model_validate(n) for n in state.neighbours]
    probability = identity(searcher_for(runtime).model, neighbours)
    trusted = trusted_of(neighbours, probability, thresholds.spu_gate, thresholds.max_references)
    return {
        "trusted": [n.model_dump() for n in trusted],
        "references": [{"id": n.id, "similarity": n.similarity} for n in trusted],
    }
