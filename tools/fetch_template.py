"""fetch_template: which attributes a listing of this category must state, in order (from policy)."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from ipl_graph.context import Context
from ipl_graph.policies import load_policy
from ipl_graph.schemas import Template
from ipl_graph.state import State


def fetch_template(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    names, generic = load_policy(runtime.context.policy).templates.for_category(state.category)
    template = Template(category=None if generic else state.category, attributes=names, generic=generic)
    ordered = [n for n in names if n in state.attributes] + [n for n in state.attributes if n not in names]
    return {
        "template": template,
        "attributes": {n: state.attributes[n] for n in ordered},
        "evidence": {n: state.evidence[n] for n in ordered},
    }
