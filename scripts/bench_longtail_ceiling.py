"""How far the image embedding lets a category classifier go on a catalog: an upper bound (issue #15).

    python scripts/bench_longtail_ceiling.py --index DIR --queries F.queries.jsonl --catalog LISTINGS

DIR and F are an `ipl eval --index DIR --out F.json` run's index and per-query file (long-tail or
full). The query photos are embedded as the graph embeds them (`embed_query`: the photo and its
mirror image) and their category is voted again by every classifier family the index could use over
the same catalog vectors, each over a grid of its settings:

- kNN: nearest products in the raw embedding or in the index's learned space (`IndexModel.matrix`),
  k hits, weight similarity**power, vote shares corrected for the categories' photos (`votes.corrected`)
  or not;
- linear probe on the raw vectors (`probe.fit_probe`), its prior correction at several strengths;
- nearest category mean (prototype), raw or learned;
- blends of a kNN vote and a probe (`probe.blend_category`), scaled by the categories' photos or not.

The best setting of each family is chosen on the queries themselves (their truth is read), so the
figure is an upper bound for classifiers of these kinds on this embedding, not an accuracy to quote;
the graph's own answer (from F) is printed beside it. Photos only: the graph also reads the
packaging's text, which none of these see. Accuracy is over the queries of products still in the
catalog, as `ipl eval` counts it; per band of the category's catalog photos as well. One JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ipl_graph import plugins  # noqa: E402
from ipl_graph.policies import load_policy  # noqa: E402
from ipl_tools.catalog.health import band  # noqa: E402
from ipl_tools.catalog.index import Catalog  # noqa: E402
from ipl_tools.catalog.probe import blend_category, fit_probe  # noqa: E402
from ipl_tools.catalog.projection import project  # noqa: E402
from ipl_tools.catalog.votes import corrected, shares  # noqa: E402
from ipl_tools.photos import resolve  # noqa: E402

Votes = list[dict[str, float]]
"""Per query, {category: share}."""


def product_scores(
    queries: list[np.ndarray], catalog: np.ndarray, groups: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """Per query (G,) per product: the mean over its photos of the product's best-matching photo, as
    the searcher ranks; and (G,) each product's index in `groups`' sorted order, for its category."""
    order = np.argsort(groups, kind="stable")
    starts = np.r_[0, np.flatnonzero(groups[order][1:] != groups[order][:-1]) + 1]
    scores = [np.maximum.reduceat((q @ catalog.T)[:, order], starts, axis=1).mean(0) for q in queries]  # (G,)
    return scores, order[starts]


def knn_votes(
    scores: list[np.ndarray],
    category: np.ndarray,
    photos: dict[str, int],
    k: int,
    power: float,
    smoothing: float | None,
) -> Votes:
    """The top k products' vote (`category`: (G,) each product's), corrected by `smoothing` or not."""
    out = []
    for s in scores:
        best = np.argsort(-s)[:k]
        votes = shares([(float(s[g]), str(category[g])) for g in best], power)
        out.append(votes if smoothing is None else corrected(votes, photos, smoothing))
    return out


def prototype_votes(queries: list[np.ndarray], catalog: np.ndarray, categories: np.ndarray) -> Votes:
    names = sorted(set(categories))
    means = np.stack([catalog[categories == c].mean(0) for c in names])  # (C, D)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    out = []
    for q in queries:
        sims = (q @ means.T).mean(0)  # (C,)
        out.append({names[int(sims.argmax())]: 1.0})
    return out


def winner(votes: dict[str, float]) -> str | None:
    return max(votes, key=lambda c: votes[c]) if votes else None


def scored(predicted: list[str | None], truth: list[str], bands: list[str]) -> dict[str, float]:
    right = [p == t for p, t in zip(predicted, truth, strict=True)]
    per: dict[str, list[bool]] = defaultdict(list)
    for b, ok in zip(bands, right, strict=True):
        per[b].append(ok)
    return {"acc": round(float(np.mean(right)), 4)} | {b: round(float(np.mean(v)), 3) for b, v in sorted(per.items())}


def jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True, help="the .queries.jsonl `ipl eval --out` wrote")
    parser.add_argument("--catalog", required=True, help="the listings JSONL the queries' photos are in")
    parser.add_argument("--embedder", default="efficientnet-lite0")
    args = parser.parse_args()

    catalog = Catalog(args.index, args.embedder)
    records, model = catalog.records(), catalog.model()
    categories = np.array([str(m.get("category") or "") for m in records.metas])
    groups = records.group("spu")
    photos = dict(Counter(c for c in categories if c))
    rows = {r["id"]: r for r in jsonl(args.catalog)}
    runs = [r for r in jsonl(args.queries) if not r["open_set"]]
    embedder, limits, base = plugins.embedder(args.embedder), load_policy("default").limits, Path(args.catalog).parent
    embed = getattr(embedder, "embed_query", embedder.embed)
    raw = [embed([resolve(str(base / p), limits) for p in rows[r["id"]]["images"]]) for r in runs]  # (P, D) each
    learned = [project(q, model.mean, model.matrix) for q in raw]
    learned_catalog = project(records.vectors, model.mean, model.matrix)
    truth = [r["truth"]["category"] for r in runs]
    bands = [band(photos.get(t, 0)) for t in truth]

    families: dict[str, dict[str, Callable[[], Votes]]] = defaultdict(dict)
    spaces = {"raw": (raw, records.vectors), "learned": (learned, learned_catalog)}
    ranked = {space: product_scores(qs, cat, groups) for space, (qs, cat) in spaces.items()}
    for space, k, power, smoothing in itertools.product(spaces, [1, 5, 10, 20], [1.0, 8.0], [None, 0.0, 5.0, 20.0]):
        scores, first = ranked[space]
        families["knn"][f"{space} k={k} power={power:g} smoothing={smoothing}"] = partial(
            knn_votes, scores, categories[first], photos, k, power, smoothing
        )
    for space, (qs, cat) in spaces.items():
        families["prototype"][space] = partial(prototype_votes, qs, cat, categories)
    results: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    cache: dict[str, Votes] = {}
    for family, settings in families.items():
        for name, votes in settings.items():
            cache[f"{family} {name}"] = votes()
            results[family][name] = scored([winner(v) for v in cache[f"{family} {name}"]], truth, bands)
    best_knn = max(results["knn"], key=lambda n: results["knn"][n]["acc"])
    for smoothing in [0.0, 5.0, 20.0, 100.0]:
        probe = fit_probe(records.vectors, list(categories), smoothing)
        if probe is None:
            break
        dists = [probe.distribution(q) for q in raw]
        results["probe"][f"smoothing={smoothing:g}"] = scored([winner(d) for d in dists], truth, bands)
        for knn, weight, scale in itertools.product(
            sorted({best_knn, "learned k=10 power=8 smoothing=5.0"}), [0.3, 0.5, 0.7, 0.9], [False, True]
        ):
            blended = [
                blend_category(v, d, weight, photos if scale else None)[0]
                for v, d in zip(cache[f"knn {knn}"], dists, strict=True)
            ]
            results["blend"][f"probe smoothing={smoothing:g} weight={weight} scaled={scale} knn {knn}"] = scored(
                blended, truth, bands
            )
    system = scored([r["category"] for r in runs], truth, bands)
    best = {f: max(v.items(), key=lambda kv: kv[1]["acc"]) for f, v in results.items()}
    print(
        json.dumps(
            {
                "queries": len(runs),
                "catalog_photos": len(categories),
                "graph": system,
                "best": {f: {"setting": n} | s for f, (n, s) in best.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
