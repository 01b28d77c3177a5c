"""categorize: the leaf category by similarity-weighted vote of the catalog neighbours."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from langgraph.runtime import Runtime

from ipl_graph import plugins
from ipl_graph.context import Context
from ipl_graph.policies import load_policy
from ipl_graph.schemas import CategoryGuess, Neighbour
from ipl_graph.state import State
from ipl_tools.safety import unsafe
from ipl_tools.search import photos_of, searcher_for


class KnnVote:
    """Each neighbour votes for its category with weight sim**power; confidence is the winner's share."""

    name = "knn-vote"

    def __init__(self, power: float = 8.0) -> None:
        self.power = power

    def categorize(self, neighbours: list[Neighbour], min_confidence: float) -> CategoryGuess:
        votes: dict[str, float] = defaultdict(float)
        paths: dict[str, list[str]] = {}
        for n in neighbours:
            if n.category:
                votes[n.category] += max(n.similarity, 0.0) ** self.power
                paths.setdefault(n.category, n.category_path)
        total = sum(votes.values())
        if not total:
            return CategoryGuess(name=None, confidence=0.0)
        ranked = sorted(votes.items(), key=lambda kv: kv[1], reverse=True)
        best, weight = ranked[0]
        confidence = round(weight / total, 4)
        runner_up = ranked[1][0] if len(ranked) > 1 else None
        if confidence < min_confidence:
            return CategoryGuess(name=None, confidence=confidence, runner_up=best)
        return CategoryGuess(name=best, confidence=confidence, path=paths[best], runner_up=runner_up)


def categorize(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = runtime.context
    policy = load_policy(ctx.policy)
    neighbours = searcher_for(runtime).search(photos_of(state), ctx.top_k)
    guess = plugins.get("categorizer", ctx.categorizer).categorize(
        neighbours, policy.thresholds.category_min_confidence
    )
    update: dict[str, Any] = {
        "category": guess.name,
        "category_confidence": guess.confidence,
        "category_path": guess.path,
    }
    banned = {c.casefold() for c in policy.safety.prohibited_categories}
    if {c.casefold() for c in [guess.name or "", *guess.path]} & banned:
        checks = [*(state.safety or {}).get("checks", []), "prohibited-categories"]
        return update | unsafe(f"prohibited category: {guess.name}", policy.safety, checks)
    return update
