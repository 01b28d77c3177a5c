"""Ranking and votes, shared by the fit and the searcher: hits vote with weight sim**power, and the
fit ranks a held-out photo's catalog neighbours best photo per product."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from ipl_tools.catalog.config import LEARN

HIDDEN = -2.0
"""The similarity written over a photo that must not be found (below any cosine)."""


def vote(hits: list[tuple[float, str | None]], power: float = LEARN.vote_power) -> tuple[str | None, float, float]:
    """(winner, its share of all weight, total weight) of values voted with weight sim**power."""
    votes, total = _votes(hits, power)
    if not votes or total <= 0:
        return None, 0.0, total
    best = max(votes.items(), key=lambda kv: kv[1])
    return best[0], best[1] / total, total


def shares(hits: list[tuple[float, str | None]], power: float = LEARN.vote_power) -> dict[str, float]:
    """{value: its share of all weight} of values voted with weight sim**power."""
    votes, total = _votes(hits, power)
    return {v: w / total for v, w in votes.items()} if total > 0 else {}


def corrected(shares: dict[str, float], photos: dict[str, int] | None,
              smoothing: float = LEARN.prior_smoothing) -> dict[str, float]:
    """Vote shares corrected for how many catalog photos each category has (`photos`): times
    (n + smoothing) / n, renormalised. A category with many photos fills the nearest hits by its
    numbers alone; this gives one with few photos its due without moving the many-photo ones."""
    if not shares or not photos:
        return shares
    scaled = {c: v * (photos.get(c, 1) + smoothing) / max(photos.get(c, 1), 1) for c, v in shares.items()}
    total = sum(scaled.values())
    return {c: v / total for c, v in scaled.items()} if total > 0 else shares


def _votes(hits: list[tuple[float, str | None]], power: float) -> tuple[dict[str, float], float]:
    votes: dict[str, float] = defaultdict(float)
    total = 0.0
    for sim, value in hits:
        weight = max(sim, 0.0) ** power
        total += weight
        if value:
            votes[value] += weight
    return votes, total


def near_duplicates(groups_a: np.ndarray, groups_b: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """(A, B) whether photo a and photo b are the same shot: one product, raw cosine `raw` over
    `near_duplicate`. Hidden from each other when the calibrations are fitted."""
    return (groups_a[:, None] == groups_b[None, :]) & (raw > LEARN.near_duplicate)


def best_per_group(sims: np.ndarray, groups: np.ndarray,
                   keep: int = LEARN.ranked_groups) -> list[tuple[float, str, int]]:
    """[(best similarity, group, index of its best photo)] best first, among the `keep * 4` nearest."""
    seen: dict[str, tuple[float, int]] = {}
    for j in top(sims, keep * 4):
        if sims[j] > HIDDEN:
            seen.setdefault(str(groups[j]), (float(sims[j]), int(j)))
    return sorted(((s, g, j) for g, (s, j) in seen.items()), reverse=True)[:keep]


def top(sims: np.ndarray, m: int) -> np.ndarray:
    """Indices of the m largest values, largest first."""
    if m >= len(sims):
        return np.argsort(-sims)
    top = np.argpartition(-sims, m)[:m]
    return top[np.argsort(-sims[top])]
