"""truncate: fit title and description to the policy's lengths, cutting only at safe boundaries,
then append the policy's AI-disclosure line (EU AI Act Art. 50) when it asks for one."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from langgraph.runtime import Runtime

from ipl_graph.context import Context
from ipl_graph.policies import load_policy
from ipl_graph.state import State

# A '.' ends a sentence only before a space or the end of the text, so "3.5" and "e-mail.com" never do.
SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s|$)|[。！？…]+[”’」』）]*")
ENDS = (".", "!", "?", "…", "。", "！", "？")
JOINERS = {"\u200d", "\ufe0e", "\ufe0f", "\u20e3"}  # zero-width joiner, variation selectors, keycap


def is_cjk(ch: str) -> bool:
    """Wide or full-width: Chinese, Japanese, Korean characters and their punctuation."""
    return unicodedata.east_asian_width(ch) in ("W", "F")


def splits_a_character(text: str, i: int) -> bool:
    """Would cutting before text[i] split what a reader sees as one character (a letter and its
    accent, an emoji sequence, a skin tone, a flag)?"""
    if i <= 0 or i >= len(text):
        return False
    after, before = text[i], text[i - 1]
    regional = "\U0001f1e6" <= before <= "\U0001f1ff" and "\U0001f1e6" <= after <= "\U0001f1ff"
    return bool(unicodedata.combining(after)) or after in JOINERS or before == "\u200d" or (
        "\U0001f3fb" <= after <= "\U0001f3ff") or regional


def inside_number(text: str, i: int) -> bool:
    """Would cutting before text[i] split a number such as 1234, 3.5, 1,000 or 12:30?"""
    if i <= 0 or i >= len(text):
        return False
    before, after = text[i - 1], text[i]
    if before.isdigit() and after.isdigit():
        return True
    nxt = text[i + 1] if i + 1 < len(text) else ""
    prev = text[i - 2] if i >= 2 else ""
    return (before.isdigit() and after in ".,:" and nxt.isdigit()) or (
        before in ".,:" and prev.isdigit() and after.isdigit())


def _word_boundary(text: str, i: int) -> bool:
    if splits_a_character(text, i) or inside_number(text, i):
        return False
    before, after = text[i - 1], text[i]
    return after.isspace() or before.isspace() or is_cjk(before) or is_cjk(after)


def cut(text: str, limit: int) -> str:
    """`text` within `limit` characters: at the last sentence end (if that keeps at least half), else
    at the last space or CJK character with an ellipsis; never inside a number or a character."""
    text = text.strip()
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    ends = [m.end() for m in SENTENCE_END.finditer(text) if m.end() <= limit]
    if ends and ends[-1] >= limit // 2:
        return text[: ends[-1]].rstrip()
    for boundary in (_word_boundary, lambda t, i: not splits_a_character(t, i) and not inside_number(t, i)):
        for i in range(limit, 0, -1):
            if not boundary(text, i):
                continue
            head = text[:i].rstrip(" ,;:，、")
            ellipsis = "" if limit < 4 or head.endswith(ENDS) else "…" if head and is_cjk(head[-1]) else "..."
            if head and len(head) + len(ellipsis) <= limit:
                return head + ellipsis
    return ""


def truncate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    policy = load_policy(runtime.context.policy)
    limit = policy.limits.max_description_chars
    line = ""
    if policy.disclosure.enabled:
        line = policy.disclosure.text.get(state.lang) or policy.disclosure.text.get("en", "")
        line = line if state.lang == "zh" or not line else " " + line
    description = cut(state.description, max(limit - len(line), 0))
    description = (description + line).strip() if line else description
    return {"title": cut(state.title, policy.limits.max_title_chars), "description": description}
