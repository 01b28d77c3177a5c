"""confirm_attributes: the seller confirms or edits the category and attributes (human in the loop).

Runs only when the Context's `confirm` is set. The graph interrupts with what it found; the run is
resumed with `Command(resume=...)`: {} (or true) keeps it all, {"category": ..., "attributes": {name:
value}} edits it. Named attributes are set (an empty value removes one), the others are kept; each
value the seller changed gets evidence "seller". A prohibited category or keyword typed by the seller
ends the run, as it would have from the photos. Needs a checkpointer (the LangGraph server has one).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime
from langgraph.types import interrupt

from ipl_graph.context import Context
from ipl_graph.errors import UserError
from ipl_graph.policies import Policy, load_policy
from ipl_graph.state import State
from ipl_tools import trust
from ipl_tools.check_safety import find_prohibited, unsafe

SELLER = "seller"


def question(state: State, wanted: list[str]) -> dict[str, Any]:
    """What the seller is asked to confirm: JSON for the client that shows the form."""
    return {
        "step": "confirm_attributes",
        "category": state.category,
        "category_confidence": state.category_confidence,
        "attributes": state.attributes,
        "evidence": state.evidence,
        "wanted": wanted,
    }


def apply_edits(state: State, answer: Any, policy: Policy | None = None) -> dict[str, Any]:
    """The state update an answer makes; raises UserError on an answer of the wrong shape. Edited
    text is outside text: cleaned, and (with a policy) a value with contact details, a lure or an
    instruction to the model is not taken (said in `screened`)."""
    if answer is None or answer is True or answer == {}:
        return {}
    if not isinstance(answer, dict) or set(answer) - {"category", "attributes"}:
        raise UserError('confirm: resume with null or {"category": str, "attributes": {name: value}}')
    update: dict[str, Any] = {}
    if "category" in answer:
        if not isinstance(answer["category"], str | None):
            raise UserError("confirm: category must be a string or null")
        category = trust.clean(answer["category"] or "").strip() or None
        if category and policy is not None and (reason := trust.problem(category, policy)):
            update["screened"] = [*update.get("screened", state.screened), f"seller's category: {reason}"]
            category = state.category
        if category != state.category:
            update |= {"category": category, "category_confidence": 1.0 if category else 0.0,
                       "category_path": [category] if category else []}
    edits = answer.get("attributes") or {}
    if not isinstance(edits, dict) or not all(isinstance(v, str | None) for v in edits.values()):
        raise UserError("confirm: attributes must map names to strings")
    attributes, evidence = dict(state.attributes), dict(state.evidence)
    for name, value in edits.items():
        name, value = trust.clean(str(name)).strip(), trust.clean(value or "").strip()
        if value and policy is not None and (reason := trust.problem(f"{name}: {value}", policy)):
            update["screened"] = [*update.get("screened", state.screened), f"seller's {name}: {reason}"]
            continue
        if not value:
            attributes.pop(name, None)
            evidence.pop(name, None)
        elif attributes.get(name) != value:
            attributes[name], evidence[name] = value, SELLER
    if attributes != state.attributes or evidence != state.evidence:
        update |= {"attributes": attributes, "evidence": evidence}
    return update


def confirm_attributes(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    policy = load_policy(runtime.context.policy)
    wanted, _ = policy.templates.for_category(state.category)
    answer = interrupt(question(state, wanted))
    update = apply_edits(state, answer, policy)
    category = update.get("category", state.category) or ""
    checks = [*(state.safety.checks if state.safety else []), "seller-edits"]
    typed = [str(answer.get("category") or ""), *map(str, (answer.get("attributes") or {}).values())] if isinstance(
        answer, dict) else []
    if category.casefold() in {c.casefold() for c in policy.safety.prohibited_categories}:
        return update | unsafe(f"prohibited category: {category}", policy.safety, checks)
    keyword = find_prohibited(typed, policy)
    if keyword:
        return update | unsafe(f"prohibited item: {keyword!r}", policy.safety, checks)
    return update
