"""moderate_stream: screen the generated text sentence by sentence, as it streamed.

The first sentence that breaks a rule stops the stream there: the safe part before it is kept (or,
if nothing is safe, a draft from the facts alone) and the listing is flagged with the reason.
"""

from __future__ import annotations

import re
from typing import Any

from langgraph.runtime import Runtime

from ipl_graph.context import Context
from ipl_graph.policies import Policy, load_policy
from ipl_graph.schemas import Moderation
from ipl_graph.state import State
from ipl_tools.generate import facts_of
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


def sentences(text: str) -> list[str]:
    return SENTENCE.findall(text)


def check_sentence(sentence: str, policy: Policy) -> str | None:
    """Why this sentence may not be published, or None."""
    lowered = sentence.casefold()
    for phrase in policy.moderation.boilerplate:
        if phrase.casefold() in lowered:
            return f"model boilerplate: {phrase!r}"
    for term in policy.moderation.banned_terms:
        if term.casefold() in lowered:
            return f"banned term: {term!r}"
    keyword = find_prohibited([sentence], policy.safety)
    if keyword:
        return f"prohibited item: {keyword!r}"
    if policy.moderation.contact_patterns:
        for label, pattern in CONTACT.items():
            if pattern.search(sentence):
                return f"contact details ({label})"
    return None


def first_violation(text: str, policy: Policy) -> tuple[int, str] | None:
    """(character offset, reason) of the first sentence that breaks a rule."""
    offset = 0
    for sentence in sentences(text):
        reason = check_sentence(sentence, policy)
        if reason:
            return offset, reason
        offset += len(sentence)
    return None


def moderate_stream(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    policy = load_policy(runtime.context.policy)
    found = first_violation(state.description, policy)
    if found is None:
        return {"moderation": Moderation(passed=True).model_dump()}
    cut_at, reason = found
    safe = state.description[:cut_at].strip()
    if not safe:
        safe = write({**facts_of(state), "seller_note": ""})  # without the note that may hold the violation
    update: dict[str, Any] = {
        "description": safe,
        "moderation": Moderation(passed=False, violations=[reason], cut_at=cut_at).model_dump(),
    }
    if state.degraded is None:
        update["degraded"] = f"moderation stopped the text: {reason}"
    return update
