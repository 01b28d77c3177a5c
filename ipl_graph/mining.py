"""Mine per-category attribute templates from a catalog (the seed system's offline mining)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

MIN_FILL = 0.5
"""An attribute joins a category's template when at least this share of its listings state it."""


def mine_templates(rows: Iterable[dict[str, Any]], min_fill: float = MIN_FILL) -> dict[str, Any]:
    """{generic: [...], categories: {category: [attribute, ...]}}, in the order the catalog usually states them."""
    per_cat: dict[str, Counter[str]] = defaultdict(Counter)
    positions: dict[str, list[int]] = defaultdict(list)
    sizes: Counter[str] = Counter()
    overall: Counter[str] = Counter()
    for row in rows:
        category = row.get("category")
        if not category:
            continue
        sizes[category] += 1
        for position, (name, value) in enumerate((row.get("attributes") or {}).items()):
            if value not in (None, ""):
                per_cat[category][name] += 1
                overall[name] += 1
                positions[name].append(position)

    def order(names: Iterable[str], counts: Counter[str]) -> list[str]:
        mean_pos = {n: sum(positions[n]) / len(positions[n]) for n in names}
        return sorted(names, key=lambda n: (mean_pos[n], -counts[n], n))

    categories = {}
    for category in sorted(sizes):
        kept = [n for n, c in per_cat[category].items() if c / sizes[category] >= min_fill]
        categories[category] = order(kept, per_cat[category])
    total = sizes.total()
    generic = order([n for n, c in overall.items() if c / max(total, 1) >= min_fill], overall)
    return {"generic": generic, "categories": categories}
