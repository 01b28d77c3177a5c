"""moderate_stream: screen the generated text sentence by sentence, as it streams.

Each rule is a guardrails-ai validator (registered locally, no hub) in one Guard: model boilerplate,
banned terms, prohibited goods, contact details and off-platform lures, and ungrounded claims (a
brand, model code, capacity, size or colour that the evidence does not carry). The generate node
feeds the stream to a `StreamModerator`, which stops the model at the first bad sentence; this node
checks the final text with the same Guard, keeps the safe part before the first bad sentence (or, if
nothing is safe, a draft from the facts alone) and flags the listing with the reason.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from typing import Any

from langgraph.runtime import Runtime

from ipl_graph.context import Context
from ipl_graph.policies import Policy, load_policy
from ipl_graph.schemas import Moderation
from ipl_graph.state import State
from ipl_tools.grounding import Grounding, ungrounded_claim
from ipl_tools.safety import find_prohibited
from ipl_tools.template_writer import write

SENTENCE = re.compile(r".+?(?:[.!?](?=\s|$)|[。！？]|$)\s*", re.S)
CONTACT = {
    "phone number": re.compile(r"(?<!\d)(?:\+?\d[\d\s().-]{7,}\d)(?!\d)"),
    "e-mail address": re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),
    "link": re.compile(r"(?:https?://|www\.)\S+|\b[\w-]+\.(?:com|net|org|cn|io|shop)\b", re.I),
    "messenger id": re.compile(
        r"(?:wechat|weixin|whatsapp|telegram|vx|v信|微信|qq)\s*(?:id)?\s*[:：号]?\s*[\w-]{5,}", re.I
    ),
    "off-platform lure": re.compile(
        r"(?:pay|deal|contact|talk)\s+(?:me\s+)?(?:outside|off)[\s-]+(?:the\s+)?(?:app|platform)|加我微信|私下交易|站外",
        re.I,
    ),
}
CJK_ENDS = ("。", "！", "？")


Rule = Callable[[str, Policy, "Grounding | None"], "str | None"]


def _boilerplate(sentence: str, policy: Policy, g: Grounding | None) -> str | None:
    lowered = sentence.casefold()
    return next((f"model boilerplate: {p!r}" for p in policy.moderation.boilerplate if p.casefold() in lowered), None)


def _banned(sentence: str, policy: Policy, g: Grounding | None) -> str | None:
    lowered = sentence.casefold()
    return next((f"banned term: {t!r}" for t in policy.moderation.banned_terms if t.casefold() in lowered), None)


def _prohibited(sentence: str, policy: Policy, g: Grounding | None) -> str | None:
    keyword = find_prohibited([sentence], policy.safety)
    return f"prohibited item: {keyword!r}" if keyword else None


def _contact(sentence: str, policy: Policy, g: Grounding | None) -> str | None:
    if not policy.moderation.contact_patterns:
        return None
    return next((f"contact details ({label})" for label, p in CONTACT.items() if p.search(sentence)), None)


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
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # else litellm fetches a price list
    os.environ.setdefault("GUARDRAILS_RUN_SYNC", "true")
    try:  # guardrails asks nltk to download punkt at import (for docs chunking IPL does not use)
        import nltk

        download, nltk.download = nltk.download, lambda *a, **k: False
    except ImportError:
        nltk = None
    try:
        from guardrails import Guard
        from guardrails.settings import settings
        from guardrails.utils.hub_telemetry_utils import HubTelemetry
        from guardrails.validator_base import ErrorSpan, FailResult, PassResult, Validator, register_validator
    finally:
        if nltk is not None:
            nltk.download = download

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
    from ipl_tools.generate import facts_of  # generate imports this module

    policy = load_policy(runtime.context.policy)
    found = first_violation(state.description, policy, Grounding.of(state, policy))
    if found is None:
        return {"moderation": Moderation(passed=True).model_dump()}
    cut_at, reason = found
    safe = state.description[:cut_at].strip()
    if not safe:
        safe = write({**facts_of(state, policy), "seller_note": ""})  # without the note that may hold the violation
    update: dict[str, Any] = {
        "description": safe,
        "moderation": Moderation(passed=False, violations=[reason], cut_at=cut_at).model_dump(),
    }
    if state.degraded is None:
        update["degraded"] = f"moderation stopped the text: {reason}"
    return update
