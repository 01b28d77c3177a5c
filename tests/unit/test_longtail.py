"""Long-tail catalogs: the eval's protocol and figures, the category probe's prior correction, and the stated
confidence's calibration that weighs categories alike and sees categories the catalog lacks (no image models)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipl_graph.face.evaluate import CONFIDENT, figures, longtail, reliability
from ipl_graph.policies import Templates
from ipl_tools.catalog.calibration import balance_weights, gate_features, logistic, with_open
from ipl_tools.catalog.config import LEARN
from ipl_tools.catalog.fit import Census, _cross_fit, _fit_gate, as_records, fit, missing_mass, unvouched, with_views
from ipl_tools.catalog.health import health_lines
from ipl_tools.catalog.index import _metadata
from ipl_tools.catalog.model import PHOTO_KINDS, IndexModel
from ipl_tools.catalog.probe import PRIOR_SMOOTHING, fit_probe, fit_probes
from ipl_tools.catalog.projection import l2
from ipl_tools.catalog.votes import corrected


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
    assert not any("studio" in line for line in lines)
    model.report["unvouched"] = {"category": 2.0, "product": 2.0}
    assert "known by studio shots alone: 2 categories and 2 products" in health_lines(model)[-1]
    assert not any("crops" in line or "missing" in line for line in lines)
    model.report |= {"views": 4, "missing_mass": 2 / 12}
    assert health_lines(model)[-2:] == [
        "  4 centre crops of the photos of products with few photos taught the projection how their photos vary",
        "  16.7% of the products have a single photo: the identity gate expects that share of sellers' products"
        " to be missing from the catalog"]
    assert health_lines(IndexModel(count=1, label_kind="none", mean=np.zeros(4), matrix=None)) == []


def clusters(sizes: dict[str, int], dim: int = 1776, spread: float = 0.5, seed: int = 0) -> tuple[np.ndarray, list]:
    """Unit photo vectors around one centre per category ({category: photos}), in the embedder's width."""
    rng = np.random.default_rng(seed)
    centres = {c: rng.standard_normal(dim) for c in sizes}
    x = np.vstack([centres[c] + spread * rng.standard_normal((n, dim)) * np.sqrt(dim / 8)
                   for c, n in sizes.items()])
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), [c for c, n in sizes.items()
                                                                                for _ in range(n)]


def test_a_fit_on_a_sample_counts_what_every_row_says():
    """Past `fit_sample` the model is fitted on a sample, but its counts are the catalog's: a product of
    three listings, one of them sampled, is not a product of one (the sample alone reads as a catalog
    without products, and would fit no identity gate, and count every product missing)."""
    x, _ = clusters({f"p{k}": 3 for k in range(20)}, spread=0.3)
    metas = [{"listing_id": f"r{i}", "spu": f"p{i // 3}", "category": f"c{i // 15}", "attributes": "{}",
              "photo": "phone"} for i in range(60)]
    ids = [f"r{i}#0" for i in range(60)]
    some = [3 * k for k in range(20)] + [1, 4, 7, 10]  # every product once, four of them twice
    sample = as_records([ids[i] for i in some], x[some], [metas[i] for i in some])
    alone, counted = fit(sample), fit(sample, census=Census().add(metas))
    assert alone.label_kind == "category" and alone.gate is None
    assert counted.label_kind == "spu" and counted.gate is not None
    assert counted.photos_per("product") == {f"p{k}": 3 for k in range(20)} and counted.report["missing_mass"] == 0.0
    assert counted.photos_per("category") == {f"c{k}": 15 for k in range(4)}
    assert counted.report["seller_photos"] == [60, 60] and alone.report["seller_photos"] == [24, 24]


def test_the_gate_reads_a_product_s_photos_as_the_fit_sample_had_them():
    """The gate learned from held-out photos counted as the sample has them: past `fit_sample`, a
    product's catalog photos are scaled to the sample, so that the gate is not asked about counts it
    never saw (a product of 30 photos in a 10% sample reads as 3)."""
    gate = [-8.0, 10.0, 5.0, 1.0]  # score, lead, log(1 + photos)
    report = {"photos_per": {"product": {"a": 30}}, "fitted_count": 1000}
    whole = IndexModel(count=1000, label_kind="spu", mean=np.zeros(2), matrix=None, gate=gate, report=report)
    sampled = IndexModel(count=1000, label_kind="spu", mean=np.zeros(2), matrix=None, gate=gate,
                         report=report | {"fit_sample": 100})
    assert whole.fit_share == 1.0 and sampled.fit_share == 0.1
    assert whole.identity_probability(0.8, 0.1, "a") == pytest.approx(logistic(gate, *gate_features(0.8, 0.7, 30)))
    assert sampled.identity_probability(0.8, 0.1, "a") == pytest.approx(logistic(gate, *gate_features(0.8, 0.7, 3)))


def test_the_category_probe_corrects_for_how_many_photos_a_category_has():
    x, y = clusters({"Apple": 120, "Kiwi": 2})
    plain, corrected = fit_probe(x, y), fit_probe(x, y, smoothing=PRIOR_SMOOTHING)
    assert plain is not None and corrected is not None and plain.classes == ["Apple", "Kiwi"]
    lift = corrected.weights[-1] - plain.weights[-1]  # the same fit, the bias raised by log((n + m) / n)
    assert lift == pytest.approx(np.log([(120 + 5) / 120, (2 + 5) / 2]), abs=1e-5)
    between = l2(x[:120].mean(0) + x[120:].mean(0))[None, :]  # as like one as the other
    assert corrected.probabilities(between)[0, 1] > plain.probabilities(between)[0, 1]
    assert fit_probes(x, {"category": y, "Brand": y})["Brand"].weights[-1] == pytest.approx(plain.weights[-1])


def test_calibration_weights_count_categories_and_absent_categories():
    w = balance_weights(["Apple"] * 16 + ["Kiwi"] * 4)
    assert w.mean() == pytest.approx(1.0) and w[0] / w[-1] == pytest.approx(0.5)  # (4 / 16) ** 0.5
    closed = np.ones((20, 2))
    x, right, weights = with_open(closed, np.ones(20), ["Apple"] * 16 + ["Kiwi"] * 4, [[0.5, 0.5]] * 3, ["Fig"] * 3)
    assert len(x) == 23 and right[20:].sum() == 0
    assert weights[20:].sum() / weights.sum() == pytest.approx(LEARN.open_share)


def test_stated_confidence_doubts_a_category_the_catalog_lacks():
    """A catalog of a crowded head (Apple) and a thin tail: held-out photos of tail categories, scored with
    their category hidden, teach the stated confidence what the head's answer to a stranger looks like."""
    sizes = {"Apple": 150, **{f"tail{k}": 6 for k in range(8)}}
    x, y = clusters(sizes, spread=1.0)
    metas = [{"listing_id": f"r{i}", "category": c, "spu": "", "attributes": "{}"} for i, c in enumerate(y)]
    records = as_records([f"r{i}#0" for i in range(len(y))], x, metas)
    model = fit(records)
    assert model.category and model.category_stated and "Apple" in model.category_typical
    assert set(model.report["held_out_category_bands"]) == {"4-10", "51+"}
    offered, stated = model.category_confidence("Apple", 0.6, model.category_typical["Apple"] - 0.1)
    assert offered > 0.5 and stated < 0.55  # a split vote for the head: worth offering, not worth stating
    assert model.below_typical("Durian", 0.5) == pytest.approx(0.5 - model.category_typical["*"])
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp))
        again = IndexModel.load(Path(tmp))
    assert again is not None
    assert again.category_confidence("Apple", 0.9, 0.5) == model.category_confidence("Apple", 0.9, 0.5)


def test_the_vote_corrects_for_how_many_photos_a_category_has():
    votes = {"Apple": 0.8, "Lemon": 0.2}  # nine apple products near a lemon's photo, one lemon
    fixed = corrected(votes, {"Apple": 283, "Lemon": 1})
    assert fixed["Lemon"] == pytest.approx(0.2 * 6 / (0.2 * 6 + 0.8 * 288 / 283))  # (1 + 5) / 1 against (283 + 5) / 283
    assert sum(fixed.values()) == pytest.approx(1.0)
    many = corrected(votes, {"Apple": 283, "Lemon": 250})  # categories with many photos: barely moved
    assert many["Lemon"] == pytest.approx(0.2, abs=0.002)
    assert corrected(votes, None) == votes and corrected({}, {"Apple": 1}) == {}


def test_a_small_catalog_scores_every_photo_and_offers_no_guess_learned_from_a_lost_category():
    """Under `min_category_cases`, every fold is scored, not the first alone; a held-out photo whose
    category has no other photo is marked absent, so the offer calibration leaves it to the stated one."""
    sizes = {"Apple": 60, **{f"tail{k}": 6 for k in range(6)}, **{f"one{k}": 1 for k in range(5)}}
    x, y = clusters(sizes, spread=1.0)
    metas = [{"listing_id": f"r{i}", "category": c, "spu": "", "attributes": "{}"} for i, c in enumerate(y)]
    held = _cross_fit(as_records([f"r{i}#0" for i in range(len(y))], x, metas), "category",
                      np.random.default_rng(0))
    assert len(held["cat"]) == len(y) < LEARN.min_category_cases  # 101 cases; the first fold alone had ~20
    absent = {c for c, present in zip(held["cat_class"], held["cat_present"], strict=True) if not present}
    assert absent == {f"one{k}" for k in range(5)}
    assert not any(ok for c, ok in zip(held["cat_class"], held["cat_ok"], strict=True) if c in absent)


def test_a_category_known_by_studio_shots_alone_is_counted_where_the_catalog_has_seller_photos():
    shop = [{"category": "Apple", "photo": "phone"}] * 5 + [{"category": "Avocado", "photo": "phone"}]
    studio = [{"category": c, "photo": "catalog"} for c in ["Apple", "Avocado", "Lime", "Tomato"]]
    metas = shop + studio + [{"category": "Kiwi", "photo": "catalog"}, {"category": "Kiwi", "photo": "seller"}]
    assert unvouched(metas, [m["category"] for m in metas]) == 2.0  # Lime and Tomato; Kiwi has a seller photo
    all_studio = [m | {"photo": "catalog"} for m in metas]  # a catalog of studio shots (sellers' too)
    assert unvouched(all_studio, [m["category"] for m in all_studio]) == 0.0
    unsaid = [{"category": m["category"]} for m in metas]  # rows that do not say what photo they are
    assert unvouched(unsaid, [m["category"] for m in unsaid]) == 0.0


def test_the_stated_confidence_is_lowered_for_the_head_of_a_catalog_that_cannot_vouch_for_its_tail():
    """30 categories known by one studio shot each, and a head with most of the seller photos: a head
    answer at 0.99 is mostly a stranger's photo taken by the head, a tail answer barely moves."""
    model = IndexModel(count=330, label_kind="spu", mean=np.zeros(2), matrix=None, gate=[0.0, 10.0, 0.0])
    categories = {"Apple": 283, "Avocado": 17, **{f"tail{k}": 1 for k in range(30)}}
    model.report = {"photos_per": {"category": categories, "product": {"gala": 283}},
                    "unvouched": {"category": 30.0, "product": 0.0}}
    head = model.absorbed(0.99, "category", "Apple")
    assert head == pytest.approx(1 / (1 + 0.01 / 0.99 + 30 * 283 / 330), abs=1e-4) and head < 0.05
    assert 0.99 > model.absorbed(0.99, "category", "tail3") > 0.9
    assert model.absorbed(0.0, "category", "Apple") == 0.0
    model.report["unvouched"] = {"category": 0.0, "product": 0.0}  # every category has seller photos
    assert model.absorbed(0.99, "category", "Apple") == 0.99
    assert model.identity_probability(0.9, 0.2, "gala") == pytest.approx(1 / (1 + np.exp(-9.0)), abs=1e-4)
    model.report = {}  # a model fitted before the count: as it was
    assert model.absorbed(0.99, "category", "Apple") == 0.99


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=40), st.integers(), st.none(), st.sampled_from(["phone", "seller", "catalog"])))
def test_a_catalog_row_says_what_photo_it_is_only_in_the_schemas_words(said):
    """What a row says of its photo reaches the index only as one of the listing schema's kinds."""
    meta = _metadata({"id": "r1", "category": "Apple", "photo": said})
    assert meta["photo"] == (said if said in PHOTO_KINDS else "")


def test_a_photo_whose_row_does_not_say_is_told_by_its_looks():
    """Every studio shot of the sample catalog looks like one (its frame near-white) and none of its
    shop photos does; the kind a row states is kept as it is."""
    from helpers import SAMPLE
    from ipl_graph.policies import load_policy
    from ipl_tools.catalog.index import photo_kind
    from ipl_tools.photos import looks_studio, resolve

    limits = load_policy().limits
    rows = [json.loads(line) for line in (SAMPLE / "listings.jsonl").read_text().splitlines()]
    for row in rows:
        photo = resolve(str(SAMPLE / row["images"][0]), limits)
        assert looks_studio(photo.path, photo.sha256) == (row["photo"] == "catalog"), row["id"]
        assert photo_kind({"photo": row["photo"]}, photo) == row["photo"]
        assert photo_kind({"photo": "polaroid"}, photo) == ("catalog" if row["photo"] == "catalog" else "seller")


def test_a_studio_catalog_with_a_few_other_photos_counts_nothing_unvouched():
    """Studio-only classes count where sellers' photos are a real share of the catalog, not where a
    studio catalog holds a handful (or a handful taken for sellers' by their looks)."""
    studio = [{"photo": "catalog", "category": f"c{i % 50}"} for i in range(400)]
    few = [{"photo": "seller", "category": "c0"}] * 10  # 2.4%
    assert unvouched(studio + few, [m["category"] for m in studio + few]) == 0.0
    many = [{"photo": "phone", "category": c} for c in ["c0", "c1"] for _ in range(40)]  # 17%
    assert unvouched(studio + many, [m["category"] for m in studio + many]) == 48.0


def test_rows_added_without_a_refit_keep_the_studio_only_classes_true():
    """A seller's photo added by projection vouches for its category and product; a studio shot of a
    product the fit never saw joins those known by studio shots alone; the counts follow."""
    from ipl_tools.catalog.fit import counted, revouched

    report = {"label_kind": "spu", "photos_per": {"category": {"Apple": 30, "Lime": 1}, "product": {"g0": 30, "g1": 1}},
              "studio_only": {"category": ["Lime"], "product": ["g1"]}, "seller_photos": [30, 31]}
    report["unvouched"] = counted(report)
    assert report["unvouched"] == {"category": 1.0, "product": 1.0}
    added = [{"listing_id": "a", "spu": "g1", "category": "Lime", "photo": "phone"},
             {"listing_id": "b", "spu": "g2", "category": "Kiwi", "photo": "catalog"},
             {"listing_id": "c", "spu": "g0", "category": "Apple", "photo": "catalog"}]
    revouched(report, as_records(["a#0", "b#0", "c#0"], np.zeros((3, 4), np.float32), added))
    assert report["studio_only"] == {"category": ["Kiwi"], "product": ["g2"]}
    assert report["seller_photos"] == [31, 34]
    assert report["unvouched"] == {"category": 1.0, "product": 1.0}
    old = {"unvouched": {"category": 2.0, "product": 0.0}}  # a model fitted before the classes were kept
    revouched(old, as_records(["a#0"], np.zeros((1, 4), np.float32), added[:1]))
    assert old == {"unvouched": {"category": 2.0, "product": 0.0}}


def test_the_missing_mass_is_the_share_of_products_known_by_one_photo():
    assert missing_mass({"gala": 283, "lime": 1, "kiwi": 1, "fig": 2}) == pytest.approx(2 / 4)
    assert missing_mass({"gala": 20, "fig": 2}) == 0.0 and missing_mass({}) == 0.0


def test_the_gate_learns_from_products_hidden_at_the_missing_mass():
    """Held-out photos scored again with their product hidden: a sibling on top, always wrong. At a
    catalog's missing mass they lower P(identical) where such siblings score; at 0 the gate is as before."""
    rng = np.random.default_rng(0)
    right = rng.random(400) < 0.8
    scores = np.where(right, 0.85, 0.6) + 0.05 * rng.standard_normal(400)
    held = {"gate": [gate_features(s, s - 0.15, 10) for s in scores],
            "gate_open": [gate_features(s, s - 0.1, 2) for s in 0.8 + 0.05 * rng.standard_normal(200)]}
    plain, opened = _fit_gate(held, right.astype(float), 0.0), _fit_gate(held, right.astype(float), 0.2)
    sibling = gate_features(0.8, 0.7, 2)
    assert logistic(opened, *sibling) < logistic(plain, *sibling) - 0.1
    assert _fit_gate({"gate": held["gate"], "gate_open": []}, right.astype(float), 0.2) == plain


def test_a_gate_fitted_before_the_photo_count_reads_score_and_margin_alone():
    model = IndexModel(count=10, label_kind="spu", mean=np.zeros(2), matrix=None, gate=[0.0, 10.0, 0.0])
    model.report = {"photos_per": {"product": {"gala": 9, "fig": 1}}}
    assert model.identity_probability(0.9, 0.2, "gala") == pytest.approx(1 / (1 + np.exp(-9.0)), abs=1e-4)
    model.gate = [0.0, 10.0, 0.0, -1.0]  # fewer photos, less trust
    assert model.identity_probability(0.9, 0.2, "fig") > model.identity_probability(0.9, 0.2, "gala")
    assert model.identity_probability(0.9, 0.2, "fig") == pytest.approx(logistic(model.gate, 0.9, 0.2, np.log(2)))


def test_views_join_the_projection_fit_labelled_as_their_photo_and_only_with_it():
    x, _ = clusters({"a": 3, "b": 2}, dim=8)
    metas = [{"listing_id": f"r{i}", "category": "c", "spu": s, "attributes": "{}"} for i, s in enumerate("aaabb")]
    records = as_records([f"r{i}#0" for i in range(5)], x, metas)
    labels = records.group("spu")
    assert with_views(records, np.arange(5), labels)[0].shape == (5, 8)  # none made
    records.views, records.view_of = np.full((4, 8), 7.0, np.float32), np.array([3, 3, 4, 4])
    vectors, y = with_views(records, np.array([0, 3]), labels)
    assert vectors.shape == (4, 8) and list(y) == ["a", "b", "b", "b"] and (vectors[2:] == 7.0).all()
    vectors, y = with_views(records, np.array([0, 1, 2]), labels)  # rows whose photos have no views
    assert vectors.shape == (3, 8)
