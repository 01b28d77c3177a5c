"""truncate: fit title and description to the policy's lengths, cutting only at safe boundaries."""

from __future__ import annotations

import re
from typing import Any

from langgraph.runtime import Runtime

from ipl_graph.context import Context
from ipl_graph.policies import load_policy
from ipl_graph.state import State

SENTENCE_END = re.compile(r"(?:[.!?](?=\s|$)|[。！？])")


def cut(text: str, limit: int) -> str:
    """`text` within `limit` characters: at the last sentence end, else the last space or CJK
    character that does not split a word or a number; never mid-character (str slicing is by code point)."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [m.end() for m in SENTENCE_END.finditer(head)]
    if ends:
        return head[: ends[-1]].strip()
    for i in range(limit - 3, 0, -1):  # room for the ellipsis
        before, after = text[i - 1], text[i]
        if after.isspace() or (not before.isascii() and not after.isdigit() and not before.isdigit()):
            return text[:i].rstrip(" ,;:，、") + ("…" if not before.isascii() else "...")
    return ""


def truncate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    policy = load_policy(runtime.context.policy)
    description = cut(state.description, policy.limits.max_description_chars)
    if policy.disclosure.enabled:
        line = policy.disclosure.text.get(state.lang) or policy.disclosure.text.get("en", "")
        description = f"{description}{'' if state.lang == 'zh' else ' '}{line}".strip()
    return {"title": cut(state.title, policy.limits.max_title_chars), "description": description}
