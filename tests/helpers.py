"""Helpers the tests share (importable as `helpers`: pytest's pythonpath includes tests/)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from langgraph.runtime import Runtime

from ipl_graph.context import Context
from ipl_graph.policies import load_policy
from ipl_graph.state import State

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "grocery"
QUERIES = SAMPLE / "queries"


def runtime(context: Context) -> Runtime[Context]:
    return Runtime(context=context)


def apply(state: State, update: dict) -> State:
    """The state after a node's partial update (no reducers in this graph: keys are replaced)."""
    return dataclasses.replace(state, **update)


def write_policy(tmp_path: Path, **changes: dict) -> str:
    """A copy of the default policy with some sections changed; returns its path."""
    import yaml

    raw = load_policy().model_dump()
    for section, values in changes.items():
        raw[section] = {**raw[section], **values}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return str(path)
