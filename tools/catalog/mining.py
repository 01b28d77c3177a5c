"""Mine per-category attribute templates from a catalog (the seed system's offline mining).

An attribute joins a category's template when enough of the category's listings state it (fill
rate), and the template lists them in the order those listings usually state them (mean rank
among the values a listing states). The generic template, for listings whose category is not
known, is mined the same way over all listings.

An attribute whose values are often the names of categories (Myntra's Type: 'Sandals' on Heels,
'Casual Shoes' on Flats) restates the category, and a listing that states it names a second,
contradicting category: it is left out of the templates.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

MIN_FILL = 0.5
"""An attribute joins a category's template when at least this share of its listings state it."""
RESTATES = 0.1
"""An attribute whose stated values name a category at least this often (and in 10 listings or
more) restates the category."""


class _Tally:
    """How many listings state each attribute, and at which rank among the values they state."""

    def __init__(self) -> None:
        self.listings = 0
        self.stated: Counter[str] = Counter()
        self.ranks: dict[str, list[int]] = defaultdict(list)

    def add(self, attributes: dict[str, Any]) -> None:
        self.listings += 1
        stated = [name for name, value in attributes.items() if value not in (None, "")]
        for rank, name in enumerate(stated):
            self.stated[name] += 1
            self.ranks[name].append(rank)

    def fill(self, name: str) -> float:
        return self.stated[name] / max(self.listings, 1)

    def template(self, min_fill: float) -> list[str]:
        kept = [n for n in self.stated if self.fill(n) >= min_fill]
        return sorted(kept, key=lambda n: (sum(self.ranks[n]) / len(self.ranks[n]), -self.stated[n], n))


def mine_templates(rows: Iterable[dict[str, Any]], min_fill: float = MIN_FILL) -> dict[str, Any]:
    """{generic: [...], categories: {category: [attribute, ...]}}, in the order the catalog usually states them."""
    per_category: dict[str, _Tally] = defaultdict(_Tally)
    overall = _Tally()
    values: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        category = row.get("category")
        if not category:
            continue
        attributes = row.get("attributes") or {}
        per_category[category].add(attributes)
        overall.add(attributes)
        for name, value in attributes.items():
            if value not in (None, ""):
                values[name].append(str(value).casefold())
    names = {c.casefold() for c in per_category}
    restating = {n for n, vs in values.items() if sum(v in names for v in vs) >= max(RESTATES * len(vs), 10)}

    def template(tally: _Tally) -> list[str]:
        return [n for n in tally.template(min_fill) if n not in restating]

    categories = {c: template(per_category[c]) for c in sorted(per_category)}
    return {"generic": template(overall), "categories": categories}


# --- titles -------------------------------------------------------------------------------------

TITLE_MIN_FILL = 0.3
"""An attribute joins a category's title order when at least this share of its catalog titles state
its value (Myntra: Brand 0.99, Gender 0.9, Colour 0.8; Usage and Season, never named, stay out)."""
TITLE_MIN_ROWS = 5
"""Categories with fewer titled listings than this use the catalog-wide order ('*')."""


def mine_titles(rows: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """{category: [attribute names and '{category}', in the order the catalog's titles state them]},
    and '*' over the whole catalog: where in its titles each attribute's value stands (mean relative
    position), kept when enough titles state it."""
    positions: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    titled: Counter[str] = Counter()
    for row in rows:
        title, category = (row.get("title") or "").casefold(), row.get("category")
        if not title or not category:
            continue
        for key in (category, "*"):
            titled[key] += 1
            for name, at in _places(title, category, row.get("attributes") or {}).items():
                positions[key][name].append(at)
    mined = {}
    for key, places in positions.items():
        if titled[key] < TITLE_MIN_ROWS:
            continue
        kept = [n for n, at in places.items() if len(at) >= TITLE_MIN_FILL * titled[key]]
        if "{category}" not in kept:
            places["{category}"] = places.get("{category}") or [1.0]
            kept.append("{category}")
        mined[key] = sorted(kept, key=lambda n: (sum(places[n]) / len(places[n]), n))
    return dict(sorted(mined.items()))


def _places(title: str, category: str, attributes: dict[str, Any]) -> dict[str, float]:
    """Where in a title (0 = start, 1 = end) each attribute value and the category's word stand."""
    found = {}
    for name, value in [*attributes.items(), ("{category}", category)]:
        words = [str(value).casefold()] if value not in (None, "") else []
        if name != "{category}" and words and words[0] in category.casefold():
            continue  # 'Casual' of Usage inside 'Casual Shoes' is the category's word, not the attribute's
        if name == "{category}":
            words += [w.rstrip("s") for w in words] + [w.replace("-", "") for w in words]
        for word in words:
            at = _find_word(title, word)
            if at >= 0:
                found[name] = at / max(len(title), 1)
                break
    return found


def _find_word(text: str, word: str) -> int:
    if len(word) < 2:
        return -1
    import re

    m = re.search(rf"(?<![a-z0-9]){re.escape(word)}", text) if word.isascii() else None
    return m.start() if m else (text.find(word) if not word.isascii() else -1)


# --- the voice of real second-hand listings -----------------------------------------------------

VOICE_CUES = {
    "opening": ("闲置", "转让", "出售", "处理", "自用", "出了", "低价出"),
    "closing": ("私聊", "我想要", "感兴趣", "欢迎", "先到先得", "直接拍", "咨询"),
}
"""Seed words that say what a clause of a listing does; the phrases themselves are mined. Openings
are looked for in a listing's first clauses, closings anywhere after its first."""
CONDITION_LABEL = ("新旧程度", "成色")
VOICE_CLAUSE = {"opening": (2, 8), "closing": (2, 16)}
"""Length bounds of a mined phrase, in characters: shorter says nothing, longer is about the product
(an opening that runs on names the product: '个人闲置的比赛级训练乒乓球拍')."""
VOICE_KEEP = 6
VOICE_MIN_LISTINGS = 2
"""A phrase one seller wrote once is theirs; one that two listings share is the register."""


def mine_voice(rows: Iterable[dict[str, Any]], lang: str = "zh") -> dict[str, list[str]]:
    """{'opening', 'condition', 'closing': phrases} mined from real listings in `lang`: clauses that
    open or close a listing in the sellers' own words (most common first), and the condition words
    they use (the listings' Condition attribute and 'Condition: X' clauses). Clauses with digits,
    Latin letters, tags or anything the trust boundary stops are never kept."""
    import re

    from ipl_graph.policies import load_policy
    from ipl_tools.trust import problem

    policy = load_policy()
    found: dict[str, Counter[str]] = {"opening": Counter(), "condition": Counter(), "closing": Counter()}
    for row in rows:
        if row.get("lang") != lang:
            continue
        if condition := (row.get("attributes") or {}).get("Condition"):
            found["condition"][str(condition)] += 1
        text = row.get("description") or ""
        clauses = [c.strip(" （）()【】[]…") for c in re.split(r"[，。！？!?\n；;、~～,.]+", text)]
        clauses = [c for c in clauses if c]
        for i, clause in enumerate(clauses):
            label, _, rest = clause.partition("：")
            if label in CONDITION_LABEL and rest:
                found["condition"][rest.split()[0]] += 1
            if re.search(r"[0-9A-Za-z#@]", clause) or problem(clause, policy):
                continue
            for key, first in (("opening", i < 2), ("closing", i > 0)):
                low, high = VOICE_CLAUSE[key]
                if first and low <= len(clause) <= high and any(cue in clause for cue in VOICE_CUES[key]):
                    found[key][clause] += 1
                    break
    return {key: [p for p, n in counts.most_common(VOICE_KEEP) if n >= VOICE_MIN_LISTINGS]
            for key, counts in found.items()}
