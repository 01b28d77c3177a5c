"""`ipl adoption`: how much of the generated listing sellers keep, measured as the seed system did.

Over the threads of a running `ipl serve`: each thread's generated listing (the graph's last
output) against what the seller saved from the page (a later state written as the last node).
Per field (title, description, attributes): the share of saved listings built on the generated text
(at least `BUILT_ON` of it kept), the share that keeps more than half of it, and the mean edit
distance (characters, and as a share of the longer text).
"""

from __future__ import annotations

import difflib
import re
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

FIELDS = ("title", "description", "attributes")
BUILT_ON = 0.2
"""A saved text that keeps less than this share of the generated one was written anew (a few words
in common, 'the', a brand, are no adoption)."""
PAGE = 100


@dataclass(frozen=True)
class Pair:
    """One listing: what the graph wrote and what the seller saved (None: never saved)."""

    thread: str
    generated: dict[str, Any]
    saved: dict[str, Any] | None


def text_of(listing: dict[str, Any], name: str) -> str:
    value = listing.get(name)
    if name == "attributes":
        return "\n".join(f"{k}: {v}" for k, v in sorted((value or {}).items()))
    return str(value or "")


def words(text: str) -> list[str]:
    """Words of Latin script, single characters of CJK: the units a seller keeps or changes."""
    return re.findall(r"[\u3400-\u9fff]|[^\W\d_\u3400-\u9fff]+|\d+", text.casefold())


def kept(generated: str, saved: str) -> float:
    """The share of the generated text's words the saved one keeps, in order (longest matching runs):
    a rewrite shares a few words by chance, an edit keeps whole runs."""
    before, after = words(generated), words(saved)
    if not before:
        return 1.0 if not after else 0.0
    blocks = difflib.SequenceMatcher(None, before, after, autojunk=False).get_matching_blocks()
    return sum(b.size for b in blocks) / len(before)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance in characters (two rows of the table: memory linear in the text)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def adoption(pairs: Iterable[Pair]) -> dict[str, Any]:
    """The figures over the listings sellers saved; counts of generated and saved listings."""
    pairs = list(pairs)
    saved = [p for p in pairs if p.saved is not None]
    report: dict[str, Any] = {"generated": len(pairs), "saved": len(saved)}
    for name in FIELDS:
        shares = [kept(text_of(p.generated, name), text_of(p.saved or {}, name)) for p in saved]
        distances = [(text_of(p.generated, name), text_of(p.saved or {}, name)) for p in saved]
        edits = [edit_distance(g, s) for g, s in distances]
        report[name] = {
            "built_on_generated": _share(s >= BUILT_ON for s in shares),
            "keeps_over_half": _share(s > 0.5 for s in shares),
            "mean_edit_distance": round(statistics.fmean(edits), 1) if edits else None,
            "mean_edit_share": round(statistics.fmean(
                e / max(len(g), len(s), 1) for e, (g, s) in zip(edits, distances, strict=True)), 3) if edits else None,
        }
    return report


def _share(flags: Iterable[bool]) -> float | None:
    values = list(flags)
    return round(sum(values) / len(values), 3) if values else None


def pairs_from_server(url: str, token: str = "", last_node: str = "score_quality") -> Iterator[Pair]:
    """Each thread of the server: its generated listing (the newest state the graph itself wrote when
    it finished) and the seller's saved one (a later state written by a client as `last_node`)."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=url, headers={"Authorization": f"Bearer {token}"} if token else None)
    offset = 0
    while True:
        threads = client.threads.search(limit=PAGE, offset=offset)
        for thread in threads:
            pair = _pair(thread["thread_id"], client.threads.get_history(thread["thread_id"], limit=50), last_node)
            if pair is not None:
                yield pair
        if len(threads) < PAGE:
            return
        offset += PAGE


def _pair(thread: str, history: list[Any], last_node: str) -> Pair | None:
    """History is newest first: the first finished graph output, and any client write after it."""
    saved = None
    for state in history:
        meta = state.get("metadata") or {}
        writes = meta.get("writes") or {}
        if meta.get("source") == "update" and saved is None:
            saved = state["values"]
        elif meta.get("source") == "loop" and not state.get("next") and (last_node in writes or not writes):
            return Pair(thread, state["values"], saved)
    return None
