"""Long-tail catalogs: the eval's protocol and figures, class-prior-aware votes and probes, and
calibrations that count every class alike and see products the catalog lacks (numpy only, no models)."""

from __future__ import annotations

import numpy as np

from ipl_graph.evaluate import CONFIDENT, figures, longtail, reliability
from ipl_graph.policies import Templates
from ipl_tools.health import health_lines
from ipl_tools.learn import IndexModel


def catalog(sizes: dict[str, list[int]]) -> tuple[list[dict], list[dict]]:
    """Catalog rows ({category: photos of each of its products}) and one query row per product."""
    rows, queries = [], []
    for category, products in sizes.items():
        for p, n in enumerate(products):
            spu = f"{category}-{p}"
            rows += [{"id": f"{spu}-{i}", "images": [f"{spu}-{i}.jpg"], "category": category, "spu": spu}
                     for i in range(n)]
            queries.append({"id": f"q-{spu}", "images": ["q.jpg"], "category": category, "spu": spu})
    queries.append({"id": "q-unknown", "images": ["q.jpg"], "category": "Durian", "spu": "durian"})
    return rows, queries


def test_longtail_protocol_is_seeded_zipf_with_products_left_out():
    sizes = {f"c{k}": [40, 30, 20] for k in range(10)}
    rows, queries = catalog(sizes)
    kept, asked, open_ids = longtail(rows, queries, seed=3)
    assert (kept, asked, open_ids) == longtail(rows, queries, seed=3)  # seeded: the same every time
    assert longtail(rows, queries, seed=4)[0] != kept
    per_category = sorted((sum(r["category"] == c for r in kept) for c in sizes), reverse=True)
    assert per_category[-1] == 1 and per_category[0] >= 60  # Zipf: the head keeps all it has, the last one photo
    assert per_category == sorted(per_category, reverse=True) and len(set(per_category)) >= 6
    present = {r["spu"] for r in kept}
    assert 3 <= sum(1 for spu in (f"c{k}-{p}" for k in range(10) for p in range(3)) if spu not in present) <= 27
    assert open_ids == {q["id"] for q in asked if q["spu"] not in present} and open_ids
    assert "q-unknown" not in {q["id"] for q in asked}  # a category the full catalog lacks is no query


class Policy:
    templates = Templates()


def test_longtail_figures():
    rows = [{"category": "Apple", "images": ["a.jpg"] * 60}, {"category": "Kiwi", "images": ["k.jpg"]}]
    queries = [{"id": f"q{i}", "category": c} for i, c in enumerate(["Apple", "Apple", "Apple", "Kiwi", "Kiwi"])]
    queries.append({"id": "new", "category": "Kiwi", "spu": "gold-kiwi"})
    results = [{"category": "Apple", "category_confidence": 0.95}, {"category": "Apple", "category_confidence": 0.95},
               {"category": "Apple", "category_confidence": 0.5}, {"category": "Apple", "category_confidence": 0.99},
               {"category": None, "category_confidence": 0.1},
               {"category": "Apple", "category_confidence": 0.97, "trusted": [{"spu": "apple-1"}]}]
    report = figures(queries, [(r, 0.1) for r in results], Policy(), None, rows, frozenset({"new"}))
    assert report["category_acc"] == 0.6 and report["macro_category_acc"] == 0.5  # (3/3 + 0/2) / 2
    assert report["confident_wrong"] == 0.5  # of the 4 stated at >= 0.9, the Kiwi and the new product are wrong
    assert report["confident_share"] == 0.8 and report["open_false_trust"] == 1.0 and report["n_open"] == 1
    assert report["bands"] == {"51+": {"n": 3, "category_acc": 1.0}, "1-3": {"n": 2, "category_acc": 0.0}}
    assert report["n_queries"] == 6 and report["identical@1"] is None
    top = reliability([(0.95, True), (0.99, False), (0.5, True)])
    assert top[-1] == {"bin": [0.9, 1.0], "n": 2, "confidence": 0.97, "acc": 0.5} and CONFIDENT == 0.9


def test_health_names_the_classes_with_too_few_photos():
    per = {"category": {"Apple": 10, "Kiwi": 1, "Fig": 1}, "product": {"a": 10, "k": 1, "f": 1}}
    model = IndexModel(count=12, label_kind="spu", mean=np.zeros(4), matrix=None, report={
        "photos": 12, "photos_per": per,
        "held_out_category_bands": {"1-3": {"n": 2, "acc": 0.0}, "4-10": {"n": 10, "acc": 0.9}}})
    lines = health_lines(model)
    assert lines[0] == "catalog health: 12 photos, 3 categories, 3 products"
    assert any("1-3 0.00 (n=2), 4-10 0.90 (n=10)" in line for line in lines)
    assert any("2 categories: Fig (1), Kiwi (1)" in line for line in lines)
    assert health_lines(IndexModel(count=1, label_kind="none", mean=np.zeros(4), matrix=None)) == []
