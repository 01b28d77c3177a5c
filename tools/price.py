"""A price suggestion: the range the catalog's prices for this product span, weighted by similarity.

The basis is the identical product (references that passed the SPU gate); where none did, the
look-alikes of the same category, said as such (`kind: similar`). Prices in other currencies than
the basis' main one are left out, never converted. No priced basis, no suggestion (None).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ipl_graph.schemas import Neighbour

MIN_SIMILAR = 3
"""Look-alikes needed, at least, for a range from similar items."""


def weighted_quantile(values: list[float], weights: list[float], q: float) -> float:
    order = np.argsort(values)
    v = np.asarray(values, dtype=float)[order]
    w = np.asarray(weights, dtype=float)[order]
    cum = np.cumsum(w) - 0.5 * w  # (n,) midpoints of each value's weight
    return float(np.interp(q * w.sum(), cum, v))


def price_range(basis: list[Neighbour], kind: str) -> dict[str, Any] | None:
    priced = [n for n in basis if n.price is not None and n.price > 0 and n.currency]
    if not priced:
        return None
    currency = Counter(n.currency for n in priced).most_common(1)[0][0]
    priced = [n for n in priced if n.currency == currency]
    prices = [float(n.price or 0) for n in priced]
    weights = [max(n.similarity, 1e-3) for n in priced]
    low, high = weighted_quantile(prices, weights, 0.25), weighted_quantile(prices, weights, 0.75)
    return {"low": round(low, 2), "high": round(high, 2), "currency": currency, "kind": kind,
            "basis": [n.id for n in priced]}


def suggest_price(
    trusted: list[Neighbour], lookalikes: list[Neighbour] | None = None, category: str | None = None
) -> dict[str, Any] | None:
    """{low, high, currency, kind: identical|similar, basis: [catalog ids]}, or None."""
    identical = price_range(trusted, "identical")
    if identical is not None or not category:
        return identical
    same = [n for n in lookalikes or [] if n.category == category and n.price]
    return price_range(same, "similar") if len(same) >= MIN_SIMILAR else None
