"""search_similar: the product hits for the seller's photos and the text read on them, from the
catalog's searcher (`catalog/searcher.py` by default, any `Searcher` plugin); hits whose catalog text
breaks a moderation rule are left out, and a catalog that cannot answer degrades the run.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from ipl_graph import plugins
from ipl_graph.backends import Searcher
from ipl_graph.context import Context
from ipl_graph.errors import IndexDamagedError, IndexMissingError, SearchUnavailableError
from ipl_graph.policies import load_policy
from ipl_graph.state import State
from ipl_tools import trust
from ipl_tools.catalog.config import LEARN

SEARCH_FAILURES = (IndexMissingError, IndexDamagedError, SearchUnavailableError, OSError)
"""What a searcher raises when the catalog cannot answer (no index, a damaged one, a server down)."""


def searcher_for(runtime: Runtime[Context]) -> Searcher:
    ctx = runtime.context
    return plugins.searcher(ctx.searcher, ctx.index_dir, ctx.embedder)


def _unlike_the_catalog(searcher: Searcher, state: State) -> str | None:
    """Why the photos are no product the catalog could tell anything of, or None: their nearest
    look-alike is below the catalog's domain floor (a banana before a fashion catalog, whose hits
    would still agree on a category, a colour and a fit)."""
    model = searcher.calibration
    floor = model.domain_floor if model is not None else None
    if floor is None:
        return None
    near = searcher.lookalikes(state.images, LEARN.lookalike_k)  # memoised: extract_attributes asks the same
    best = near[0].similarity if near else -1.0
    if best >= floor:
        return None
    return f"the photos look like nothing in the catalog (nearest look-alike {best:.2f}, its floor {floor:.2f})"


def search_similar(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The product hits for the photos and the text read on them; a hit whose catalog row breaks a
    moderation rule (an index built before quarantine, `trust.row_problem`) is no reference and is
    left out. A catalog that cannot answer, or photos that look like nothing in it, are said in
    `degraded` (the graph then writes from the photos alone)."""
    policy = load_policy(runtime.context.policy)
    searcher = searcher_for(runtime)
    try:
        hits = searcher.search(state.images, runtime.context.top_k, tuple(state.ocr_text))
        unlike = _unlike_the_catalog(searcher, state)
    except SEARCH_FAILURES as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:400]  # the fix it names stays whole
        return {"neighbours": [], "degraded": f"catalog search failed ({reason}); written from the photos alone"}
    if unlike:
        return {"neighbours": [], "degraded": f"{unlike}; written from the photos alone"}
    kept = [h for h in hits if not trust.neighbour_problem(h, policy)]
    update: dict[str, Any] = {"neighbours": kept}
    if len(kept) < len(hits):
        update["screened"] = [*state.screened, f"{len(hits) - len(kept)} catalog hit(s) left out: their text breaks"
                                               " a moderation rule"]
    return update
