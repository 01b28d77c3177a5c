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

SEARCH_FAILURES = (IndexMissingError, IndexDamagedError, SearchUnavailableError, OSError)
"""What a searcher raises when the catalog cannot answer (no index, a damaged one, a server down)."""


def searcher_for(runtime: Runtime[Context]) -> Searcher:
    ctx = runtime.context
    return plugins.searcher(ctx.searcher, ctx.index_dir, ctx.embedder)


def search_similar(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The product hits for the photos and the text read on them; a hit whose catalog row breaks a
    moderation rule (an index built before quarantine, `trust.row_problem`) is no reference and is
    left out. A catalog that cannot answer is said in `degraded` (the graph then writes from the
    photos alone)."""
    policy = load_policy(runtime.context.policy)
    try:
        hits = searcher_for(runtime).search(state.images, runtime.context.top_k, tuple(state.ocr_text))
    except SEARCH_FAILURES as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:400]  # the fix it names stays whole
        return {"neighbours": [], "degraded": f"catalog search failed ({reason}); written from the photos alone"}
    kept = [h for h in hits if not trust.neighbour_problem(h, policy)]
    update: dict[str, Any] = {"neighbours": kept}
    if len(kept) < len(hits):
        update["screened"] = [*state.screened, f"{len(hits) - len(kept)} catalog hit(s) left out: their text breaks"
                                               " a moderation rule"]
    return update
