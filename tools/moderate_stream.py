"""moderate_stream: screen the generated text sentence by sentence, as it streams.

Each rule is a guardrails-ai validator (registered locally, no hub) in one Guard: model boilerplate,
banned terms, prohibited goods, contact details and off-platform lures, and ungrounded claims (a
brand, model code, capacity, size or colour that the evidence does not carry). The generate node
feeds the stream to a `StreamModerator`, which stops the model at the first bad sentence; this node
checks the final text with the same Guard, keeps the safe part before the first bad sentence (or, if
nothing is safe, a draft from the facts alone) and flags the listing with the reason.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from langgraph.runtime import Runtime

from ipl_graph import taming
from ipl_graph.context import Context
from ipl_graph.policies import Policy, load_policy
from ipl_graph.schemas import Moderation
from ipl_graph.state import State
from ipl_tools import trust
from ipl_tools.facts import facts_of
from ipl_tools.grounding import Grounding, ungrounded_claim
from ipl_tools.template_writer import compose_title, write

SENTENCE = re.compile(
    rf".+?(?:(?<!\s)[.!?](?=\s|$)(?!\s+(?i:{trust.NO_WORD_TLDS})(?![a-zA-Z0-9-]))|[。！？]|$)\s*", re.S)
"""A sentence: up to a full stop, ! or ? before a space, or a CJK end. Not a dot a domain hides behind
("shop . com", "shop. com"), so that cutting a text at a sentence does not keep half of one."""
CJK_ENDS = ("。", "！", "？")


Rule = Callable[[str, Policy, "Grounding | None"], "str | None"]


def _boilerplate(sentence: str, policy: Policy, g: Grounding | None) -> str | None:
    lowered = sentence.casefold()
    return next((f"model boilerplate: {p!r}" for p in policy.moderation.boilerplate if p.casefold() in lowered), None)


def _banned(sentence: str, policy: Policy, g: Grounding | None) -> str | None:
    term = trust.listed_term(trust.views(sentence, policy.moderation), tuple(policy.moderation.banned_terms))
    return f"banned term: {term!r}" if term else None


def _prohibited(sentence: str, policy: Policy, g: Grounding | None) -> str | None:
    keyword = trust.prohibited([sentence], policy)
    return f"prohibited item: {keyword!r}" if keyword else None


def _contact(sentence: str, policy: Policy, g: Grounding | None) -> str | None:
    return trust.contact(trust.views(sentence, policy.moderation), policy.moderation)


def _injection(sentence: str, policy: Policy, g: Grounding | None) -> str | None:
    return trust.injection(trust.views(sentence, policy.moderation), policy.moderation)


def _authenticity(sentence: str, policy: Policy, g: Grounding | None) -> str | None:
    return trust.authenticity(trust.views(sentence, policy.moderation), policy.moderation,
                              g.references if g else "")


def _ungrounded(sentence: str, policy: Policy, g: Grounding | None) -> str | None:
    if g is None or not policy.moderation.grounding:
        return None
    return ungrounded_claim(sentence, g)


# In order of precedence when one sentence breaks several rules.
RULES: dict[str, Rule] = {
    "ipl/model-boilerplate": _boilerplate,
    "ipl/banned-terms": _banned,
    "ipl/prohibited-goods": _prohibited,
    "ipl/contact-details": _contact,
    "ipl/injected-instructions": _injection,
    "ipl/authenticity-claims": _authenticity,
    "ipl/grounded-claims": _ungrounded,
}


def sentences(text: str) -> list[str]:
    return SENTENCE.findall(text)


def check_sentence(sentence: str, policy: Policy, grounding: Grounding | None = None) -> str | None:
    """Why this sentence may not be published, or None (the rules alone, without the Guard)."""
    return next((r for rule in RULES.values() if (r := rule(sentence, policy, grounding))), None)


def _first_breaking(text: str, rule: Rule, policy: Policy, g: Grounding | None) -> tuple[int, int, str] | None:
    offset = 0
    for sentence in sentences(text):
        reason = rule(sentence, policy, g)
        if reason:
            return offset, offset + len(sentence), reason
        offset += len(sentence)
    return None


_guard_lock = threading.Lock()
_guard: Any = None
_class_names: list[str] = []


def guard() -> Any:
    """The moderation Guard, built on first use: importing guardrails takes seconds."""
    global _guard
    with _guard_lock:
        if _guard is None:
            _guard = _build_guard()
        return _guard


def guard_ready() -> bool:
    return _guard is not None


def prewarm() -> None:
    """Import guardrails and build the Guard in the background (the generate node starts this)."""
    if _guard is None:
        threading.Thread(target=guard, name="ipl-guard-prewarm", daemon=True).start()


def _build_guard() -> Any:
    with taming.guardrails_imports():  # offline, without seconds of unused extras (ipl_graph.taming)
        from guardrails import Guard
        from guardrails.settings import settings
        from guardrails.utils.hub_telemetry_utils import HubTelemetry
        from guardrails.validator_base import ErrorSpan, FailResult, PassResult, Validator, register_validator

    def validator(name: str, rule: Rule) -> type:
        def _validate(self: Any, value: Any, metadata: dict[str, Any]) -> Any:
            checks = metadata["ipl"]
            found = _first_breaking(str(value), rule, checks.policy, checks.grounding)
            if found is None:
                return PassResult()
            start, end, reason = found
            return FailResult(error_message=reason, error_spans=[ErrorSpan(start=start, end=end, reason=reason)])

        class_name = "".join(w.title() for w in re.split(r"[/-]", name))
        cls = type(class_name, (Validator,), {"_validate": _validate})
        return register_validator(name=name, data_type="string")(cls)

    HubTelemetry(enabled=False)  # the first instance decides: no spans, nothing exported
    built = Guard(name="ipl-moderation")
    built.configure(allow_metrics_collection=False)
    settings.rc.enable_metrics = False  # validators read it; without an rc file it defaults to True
    classes = [validator(name, rule) for name, rule in RULES.items()]
    _class_names[:] = [c.__name__ for c in classes]
    return built.use(*(c(on_fail="noop") for c in classes))


class _Checks:
    """What the validators check against, opaque to guardrails' tracing (which walks dicts and models)."""

    __slots__ = ("policy", "grounding")

    def __init__(self, policy: Policy, grounding: Grounding | None) -> None:
        self.policy, self.grounding = policy, grounding

    def __repr__(self) -> str:
        return "<ipl moderation checks>"


def first_violation(text: str, policy: Policy, grounding: Grounding | None = None) -> tuple[int, str] | None:
    """(character offset, reason) of the first sentence that breaks a rule, checked by the Guard."""
    if not text.strip():
        return None
    g = guard()
    with _guard_lock:  # a Guard keeps per-call history: one call at a time
        outcome = g.validate(text, metadata={"ipl": _Checks(policy, grounding)})
    if outcome.validation_passed:
        return None
    found = [
        (s.error_spans[0].start if s.error_spans else 0, _class_names.index(s.validator_name), s.failure_reason or "")
        for s in outcome.validation_summaries or []
    ]
    start, _, reason = min(found)
    return start, reason


class StreamModerator:
    """Checks a stream as it arrives, a complete sentence at a time, once the Guard is ready."""

    def __init__(self, policy: Policy, grounding: Grounding | None = None) -> None:
        self.policy, self.grounding = policy, grounding
        self.text = ""
        self.checked = 0
        self.violation: tuple[int, str] | None = None

    def feed(self, chunk: str) -> tuple[int, str] | None:
        """Add a chunk; (offset, reason) once a complete sentence breaks a rule, else None."""
        self.text += chunk
        if self.violation is None and guard_ready():
            end = complete_up_to(self.text, self.checked)
            if end > self.checked:
                found = first_violation(self.text[self.checked:end], self.policy, self.grounding)
                self.violation = (self.checked + found[0], found[1]) if found else None
                self.checked = end
        return self.violation


def complete_up_to(text: str, start: int = 0) -> int:
    """Where the complete sentences from `start` end: a sentence whose '.' has no space after it yet
    may still be a number ('3.' then '5') and waits for the next chunk."""
    end = start
    for m in SENTENCE.finditer(text, start):
        body = m.group().rstrip()
        if not (body.endswith(CJK_ENDS) or (body.endswith((".", "!", "?")) and m.group() != body)):
            break
        end = m.end()
    return end


def moderate_stream(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Check every field of the listing: values a rule stops are left out, the title is rebuilt
    without them, and the description keeps its safe part (or a draft from the checked facts,
    itself checked again). Nothing a check stopped is published anywhere."""
    policy = load_policy(runtime.context.policy)
    fields, violations = screened_fields(state, policy)
    state = replace(state, **fields)
    grounding = Grounding.of(state, policy)
    description, reason = moderated_description(state, policy, grounding)
    cut_at = None
    if reason:
        violations.insert(0, reason)
        found = first_violation(trust.clean(state.description), policy, grounding)
        cut_at = found[0] if found else len(description)
    update: dict[str, Any] = fields | {
        "description": description,
        "moderation": Moderation(passed=not violations, violations=violations, cut_at=cut_at),
        "screened": [*state.screened, *violations],
    }
    if reason and state.degraded is None:
        update["degraded"] = f"moderation stopped the text: {reason}"
    return update


def screened_fields(state: State, policy: Policy) -> tuple[dict[str, Any], list[str]]:
    """Category, references, attributes and title with every value a rule stops left out, and why."""

    reasons: list[str] = []
    trusted = [r for r in state.trusted if not _stopped(reasons, "reference", trust.neighbour_problem(r, policy))]
    references = [r for r in state.references if any(t.id == r.get("id") for t in trusted)]
    evidence_text = "\n".join(str(v) for r in trusted for v in (r.title, r.description) if v)
    category = trust.clean(state.category) if state.category else None
    if category and _stopped(reasons, "category", trust.problem(" / ".join([category, *state.category_path]), policy)):
        category = None
    attributes, evidence = {}, {}
    for name, value in state.attributes.items():
        if not _stopped(reasons, f"attribute {name}", trust.problem(f"{name}: {value}", policy, evidence_text)):
            attributes[name], evidence[name] = trust.clean(value), state.evidence.get(name, "")
    fields: dict[str, Any] = {"trusted": trusted, "references": references, "attributes": attributes,
                              "evidence": evidence, "price": _screened_price(state.price, policy)}
    if category is None and state.category:
        fields |= {"category": None, "category_confidence": 0.0, "category_path": []}
    elif category:
        fields |= {"category": category, "category_path": [trust.clean(p) for p in state.category_path]}
    title = trust.clean(state.title)
    if _stopped(reasons, "title", trust.problem(title, policy, evidence_text)):
        title = compose_title(facts_of(replace(state, **fields), policy))
        title = "" if trust.problem(title, policy, evidence_text) else title
    return fields | {"title": title}, reasons


def _screened_price(price: dict[str, Any] | None, policy: Policy) -> dict[str, Any] | None:
    """The price suggestion without basis ids a rule stops (an index built before quarantine)."""
    if not price:
        return price
    basis = [i for i in price.get("basis") or [] if not trust.problem(str(i), policy, phones=False)]
    return {**price, "basis": basis} if basis else None


def _stopped(reasons: list[str], what: str, reason: str | None) -> bool:
    if reason:
        reasons.append(f"{what}: {reason}")
    return reason is not None


def moderated_description(state: State, policy: Policy, grounding: Grounding) -> tuple[str, str | None]:
    """(the description to publish, why it was cut or None). Checked sentence by sentence by the
    Guard, then as a whole (an evasion spread over sentences); a cut text keeps its safe head, an
    empty head a draft from the checked facts, itself checked: the first text that passes wins."""

    text = trust.clean(state.description)
    reason = _first_reason(text, policy, grounding)
    if reason is None:
        return text, None
    head = _safe_head(text, policy, grounding)
    if head:
        return head, reason
    draft = write({**facts_of(state, policy), "seller_note": "", "note": {}})  # without the note that may hold it
    if _first_reason(draft, policy, grounding) is None:
        return draft, reason
    return _safe_head(draft, policy, grounding), reason


def _first_reason(text: str, policy: Policy, grounding: Grounding) -> str | None:
    found = first_violation(text, policy, grounding)
    return found[1] if found else trust.problem(text, policy, grounding.references)


def _safe_head(text: str, policy: Policy, grounding: Grounding) -> str:
    """The longest run of whole sentences from the start that breaks no rule, alone or together, and
    holds no part of a violation spread over sentences ('shop 。' of 'shop 。com', cut at the '。')."""
    found = first_violation(text, policy, grounding)
    whole = sentences(text[: found[0]] if found else text)

    def breaks(parts: list[str]) -> bool:
        return trust.problem("".join(parts), policy, grounding.references) is not None

    k = len(whole)
    while k and breaks(whole[:k]):
        k -= 1
    if k < len(whole) and not breaks(whole[k : k + 1]):  # sentence k completes a violation begun before it:
        k = max((j for j in range(k) if breaks(whole[j : k + 1])), default=0)  # cut where it begins
        while k and breaks(whole[:k]):
            k -= 1
    return "".join(whole[:k]).strip()
