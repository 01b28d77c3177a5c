"""gate_matches: the SPU-threshold gate. Only hits this similar are trusted as the identical product."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from ipl_graph.context import Context
from ipl_graph.policies import load_policy
from ipl_graph.state import State


def gate_matches(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    thresholds = load_policy(runtime.context.policy).thresholds
    trusted = [n for n in state.neighbours if n["similarity"] >= thresholds.spu_gate]
    trusted = trusted[: thresholds.max_references]
    return {
        "trusted": trusted,
        "references": [{"id": n["id"], "similarity": n["similarity"]} for n in trusted],
    }
