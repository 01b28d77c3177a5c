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
