"""categorize: the leaf category by similarity-weighted vote of the catalog's nearest products.

Each product hit votes for its category with weight evidence**8 (its similarity, moved towards 1 by
how well the text read on the pack matches its listing: `Neighbour.evidence`), and the shares are
corrected for how many catalog photos each category has (`votes.corrected`); where the index blends
in a category probe (`probe.py`, corrected alike: catalogs without spu groups), the vote's shares and
the probe's probabilities are averaged. Two
calibrations learned on held-out catalog photos (`catalog/fit.py`) judge it: whether the guess is
worth offering where the catalog has the seller's category (below the policy's
`category_min_confidence` the graph abstains), and the confidence the listing states, which weighs
every category alike, expects sellers with categories the catalog lacks, and is lowered for the
head of a catalog that knows many categories by studio shots alone (`IndexModel.absorbed`; the text
names the leaf only when it is high).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from ipl_graph import plugins
from ipl_graph.backends import CategoryRequest
from ipl_graph.context import Context
from ipl_graph.policies import load_policy
from ipl_graph.schemas import CategoryGuess
from ipl_graph.state import State
from ipl_tools.catalog.config import LEARN
from ipl_tools.catalog.probe import blend_category
from ipl_tools.catalog.votes import corrected, shares
from ipl_tools.check_safety import unsafe
from ipl_tools.search_similar import searcher_for


class KnnVote:
    """Similarity-weighted kNN vote; confidence is the calibrated P(right), or the raw share."""

    name = "knn-vote"

    def __init__(self, power: float = LEARN.vote_power) -> None:
        self.power = power

    def categorize(self, request: CategoryRequest) -> CategoryGuess:
        """The request's `prior` ({category: probability} of the probe) is blended with the vote when
        given, at its `prior_weight` (the vote has the rest)."""
        neighbours, calibrate, min_confidence = request.neighbours, request.calibrate, request.min_confidence
        votes = corrected(shares([(n.evidence, n.category) for n in neighbours], self.power), request.photos)
        best, share = blend_category(votes, request.prior, request.prior_weight, request.photos)
        if best is None or not neighbours:
            return CategoryGuess(name=None, confidence=0.0)
        offered, confidence = calibrate(best, share, neighbours[0].similarity) if calibrate else (share, share)
        offered, confidence = min(offered, 0.9999), round(min(confidence, 0.9999), 4)  # policy 1 switches it off
        others = [n.category for n in neighbours if n.category and n.category != best]
        runner_up = others[0] if others else None
        if offered < min_confidence:
            return CategoryGuess(name=None, confidence=confidence, runner_up=best)
        path = next((n.category_path for n in neighbours if n.category == best and n.category_path), [best])
        return CategoryGuess(name=best, confidence=confidence, path=path, runner_up=runner_up)


def categorize(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The category voted by the product hits `search_similar` found (`state.neighbours`)."""
    ctx = runtime.context
    policy = load_policy(ctx.policy)
    searcher = searcher_for(runtime)
    model = searcher.calibration
    guess = plugins.categorizer(ctx.categorizer).categorize(CategoryRequest(
        neighbours=state.neighbours, min_confidence=policy.thresholds.category_min_confidence,
        calibrate=model.category_confidence if model is not None else None,
        prior=searcher.category_prior(state.images),
        prior_weight=model.category_probe_weight if model is not None else 0.5,
        photos=model.category_photos if model is not None else None,
    ))
    update: dict[str, Any] = {
        "category": guess.name,
        "category_confidence": guess.confidence,
        "category_path": guess.path,
    }
    banned = {c.casefold() for c in policy.safety.prohibited_categories}
    if {c.casefold() for c in [guess.name or "", *guess.path]} & banned:
        checks = [*(state.safety.checks if state.safety else []), "prohibited-categories"]
        return update | unsafe(f"prohibited category: {guess.name}", policy.safety, checks)
    return update
