"""What the writer knows of a listing beyond its attributes: the seller's hint read into its parts
(condition, how long used, why selling, flaws, what is included, pickup or delivery, price
firmness...), the kind of thing a category path names, and a word for an item whose leaf category
is not sure enough to name. The cue words are policy (`writing:`), English and Chinese.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from ipl_graph.policies import WritingPolicy
from ipl_tools.trust import SEPARATOR_RUN

CLAUSE = re.compile(r"[^\n.!?;,。！？；，、]+")
"""A hint's clauses: split at sentence ends and commas ('barely used, comes with box, pickup only')."""


@lru_cache(maxsize=16)
def _cues(items: tuple[tuple[str, tuple[str, ...]], ...]) -> list[tuple[str, re.Pattern[str]]]:
    def pattern(cue: str) -> str:
        body = re.sub(r" ([?*])?", lambda m: SEPARATOR_RUN[bool(m.group(1))], cue.casefold())
        return rf"(?<![a-z]){body}" if cue[:1].isascii() and cue[:1].isalpha() else body

    return [(part, re.compile("|".join(pattern(c) for c in cues))) for part, cues in items if cues]


def read_hint(hint: str, policy: WritingPolicy, conditions: Iterable[str] = ()) -> dict[str, list[str]]:
    """{part: [the seller's own clauses]}, parts in the policy's order; clauses no cue names go to
    'note'. `conditions` are condition words mined from real listings, cues too. Every clause keeps
    the seller's words; only its edges are trimmed."""
    parts: dict[str, list[str]] = {}
    named = {p: (*c, *(re.escape(w) for w in conditions)) if p == "condition" else tuple(c)
             for p, c in policy.hint_parts.items()}
    cues = _cues(tuple(named.items()))
    for clause in (c.strip(" -–—:：") for c in CLAUSE.findall(hint)):
        if not clause:
            continue
        lowered = clause.casefold()
        part = next((p for p, rule in cues if rule.search(lowered)), "note")
        parts.setdefault(part, []).append(clause)
    return parts


def kind_of(path: Iterable[str], policy: WritingPolicy) -> str:
    """The kind of thing a category path names ('clothing', 'food', ...), or 'default'."""
    words = {w for p in path for w in re.split(r"[\s/_]+", p.casefold()) if w}
    return next((kind for kind, names in policy.kinds.items() if words & {n.casefold() for n in names}), "default")


def shared_word(texts: list[str], least: float, exclude: Iterable[str] = ()) -> str | None:
    """The word that at least `least` of `texts` share (the top catalog hits' categories and names),
    the most shared first, never one of `exclude` (brands) or a number; None if none is shared."""
    if not texts:
        return None
    excluded = {e.casefold() for e in exclude}
    counts: Counter[str] = Counter()
    spelled: dict[str, str] = {}
    for text in texts:
        words = {w.casefold(): w for w in re.findall(r"[^\W\d_][\w'-]*", text)}
        for key, word in words.items():
            if key not in excluded and len(key) > 2:
                counts[key] += 1
                spelled.setdefault(key, word)
    best = [(n, k) for k, n in counts.items() if n >= least * len(texts)]
    return spelled[max(best)[1]] if best else None
