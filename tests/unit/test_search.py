"""What the index learns from its catalog, and how search ranks products: numpy only, no models."""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipl_graph.backends import CategoryRequest
from ipl_graph.schemas import CategoryGuess, Neighbour
from ipl_tools.catalog.calibration import fit_logistic, logistic
from ipl_tools.catalog.fit import Records, count_text, fit, label_kind
from ipl_tools.catalog.model import IndexModel
from ipl_tools.catalog.probe import blend, blend_category, fit_probe
from ipl_tools.catalog.projection import fit_lda, project
from ipl_tools.catalog.searcher import aggregate, product_of
from ipl_tools.catalog.text import (
    clashes,
    document_frequency,
    fold,
    idf,
    listing_text,
    stated_values,
    text_match,
    trigrams,
    vocabulary,
    words,
)
from ipl_tools.catalog.votes import vote
from ipl_tools.categorize import KnnVote
from ipl_tools.gate_matches import trusted_of


def blobs(n_classes=6, per_class=20, dim=64, spread=0.6, seed=0):
    """Classes that differ along a few directions, buried in isotropic noise of the same size."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((n_classes, dim))
    centres[:, :4] = rng.standard_normal((n_classes, 4))
    x = np.repeat(centres, per_class, 0) + spread * rng.standard_normal((n_classes * per_class, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), np.repeat(np.arange(n_classes), per_class)


def nn_accuracy(train, y_train, test, y_test):
    return float((y_train[np.argmax(test @ train.T, axis=1)] == y_test).mean())


def test_lda_projection_beats_raw_cosine_on_held_out_photos():
    x, y = blobs(seed=1)
    x2, y2 = blobs(seed=1, per_class=10)  # same centres, new noise
    mean, matrix = fit_lda(x, y)
    assert matrix.shape == (64, 5)  # classes - 1 dimensions
    raw = nn_accuracy(x, y, x2, y2)
    learned = nn_accuracy(project(x, mean, matrix), y, project(x2, mean, matrix), y2)
    assert learned > raw + 0.1


def test_lda_needs_two_classes():
    x, _ = blobs()
    assert fit_lda(x, np.zeros(len(x)))[1] is None


def test_logistic_calibration_is_monotone_and_fits_the_rate():
    rng = np.random.default_rng(0)
    score = rng.uniform(0, 1, 4000)
    right = rng.uniform(0, 1, 4000) < score  # P(right | score) = score
    coef = fit_logistic(score[:, None], right.astype(float))
    assert logistic(coef, 0.2) < logistic(coef, 0.5) < logistic(coef, 0.8)
    assert abs(logistic(coef, 0.5) - 0.5) < 0.05 and logistic(coef, 0.95) < 1.0


def test_vote_weights_by_similarity_power():
    winner, share, _ = vote([(0.9, "Milk"), (0.6, "Juice"), (0.6, "Juice"), (0.5, None)], power=8)
    assert winner == "Milk" and 0.8 < share < 1.0
    assert vote([(0.9, None)]) == (None, 0.0, pytest.approx(0.9**8))


def test_ocr_text_matches_titles_through_accents_and_case():
    idf = {g: 1.0 for g in trigrams("Arla Mjölk Bravo Apple Juice")}
    bravo = text_match(trigrams("BRAVO 88R"), trigrams("Bravo Apple Juice Bravo"), idf)
    arla = text_match(trigrams("BRAVO 88R"), trigrams("Arla Standard Milk Arla"), idf)
    assert bravo > 0.4 and arla == 0.0
    assert trigrams("MJOLK") <= trigrams("mjölk") and trigrams("12 %") == set()


ROWS = [{"listing_id": "1", "spu": "a", "title": "Bravo Apple Juice", "category": "Juice",
         "attributes": {"Brand": "Bravo"}},
        {"listing_id": "2", "spu": "b", "title": "Arla Standard Milk", "category": "Milk",
         "attributes": {"Brand": "Arla"}},
        {"listing_id": "3", "spu": "c", "title": "Oatly Oat Milk", "category": "Oat-Milk",
         "attributes": {"Brand": "Oatly"}}]


def test_the_text_tables_grown_row_by_row_are_those_counted_at_once():
    """What a fit on a sample counts page by page (`Catalog._refit`), or rows added without a refit
    (`Catalog._extend`), gives the tables of the whole catalog counted at once."""
    model = IndexModel(count=3, label_kind="spu", mean=np.zeros(2), matrix=None)
    for row in ROWS:
        count_text(model, [row])
    df, documents = document_frequency(ROWS)
    assert (model.trigram_df, model.documents) == (df, documents) == (df, 3)
    assert model.idf == idf(df, documents) and model.words == vocabulary(ROWS) and model.stated == stated_values(ROWS)
    assert model.idf[" oa"] > model.idf["lk "]  # one listing says 'oat', two say 'milk'
    assert text_match(trigrams("OATLY"), trigrams(listing_text(ROWS[2])), model.idf) > 0.3
    assert IndexModel(count=2, label_kind="spu", mean=np.zeros(2), matrix=None).idf == {}


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=40) | st.text(st.characters(max_codepoint=127), max_size=40))
def test_folding_ascii_text_fast_is_folding_it_in_full(text):
    """`fold` skips Unicode decomposition for ASCII text: the same folded text as the full path, for
    any text (what OCR reads on a pack is matched through it)."""
    full = "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))
    assert fold(text) == full


def meta(listing, spu=None, **more):
    return {"listing_id": listing, "spu": spu or "", "category": more.pop("category", ""), **more}


def test_pack_text_clashes_only_with_words_that_name_other_products():
    rows = [{"listing_id": "1", "spu": "a", "title": "God Morgon Orange Juice", "category": "Juice"},
            {"listing_id": "2", "spu": "b", "title": "Golden Delicious", "category": "Apple",
             "category_path": json.dumps(["Fruit", "Apple"])},
            {"listing_id": "3", "spu": "b", "title": "Golden Delicious", "category": "Apple"}]
    known = vocabulary(rows)
    assert known == {"morgon": 1, "orange": 1, "juice": 1, "golden": 1, "delicious": 1, "apple": 1, "fruit": 1}
    assert words("orange&red GRAPEFRUITS 100% OD") == {"orange", "grapefruit"}
    orange = "God Morgon Orange Juice"
    assert clashes(["GOD MOR GON", "apples"], orange, known) == {"apple"}  # names product b, not this one
    assert clashes(["ORANGE", "juice"], orange, known) == set()  # its own words
    assert clashes(["grapefruit", "Päron", "pple"], orange, known) == set()  # words no catalog product names
    assert clashes(["ÄPPLE"], orange, known) == {"apple"}  # folded as the titles are


@settings(max_examples=300, deadline=None)
@given(read=st.lists(st.text(max_size=40), max_size=6), title=st.text(max_size=40))
def test_a_clash_is_always_a_catalog_word_the_hit_does_not_name(read, title):
    """Whatever OCR reads (any script, debris, casing): a clash is a word some catalog product names, and
    never one the top hit's own text names, so the pack's text can withhold trust but never create it."""
    known = vocabulary([{"listing_id": "1", "title": "God Morgon Orange Juice"},
                        {"listing_id": "2", "title": "Golden Delicious", "category": "Apple"}])
    found = clashes(read, title, known)
    assert found <= set(known) and not found & words(title)
    assert clashes([*read, title], title, known) == found  # reading the hit's own name adds nothing


def test_aggregate_scores_products_over_all_photos():
    photo1 = [(0.9, meta("a1", "A")), (0.5, meta("b1", "B"))]
    photo2 = [(0.99, meta("b1", "B")), (0.5, meta("a2", "A"))]
    ranked = aggregate([photo1, photo2], product_of)
    assert [m["spu"] for _, m in ranked] == ["B", "A"]  # B: (0.5 + 0.99) / 2 > A: (0.9 + 0.5) / 2
    assert ranked[1][1]["listing_id"] == "a1"  # a product shows its best-matching listing
    # per listing, a photo that missed it counts the lowest similarity seen (0.5)
    assert [m["listing_id"] for _, m in aggregate([photo1, photo2])] == ["b1", "a1", "a2"]


def test_gate_trusts_the_top_product_and_its_listings_only():
    hits = [Neighbour(id="a1", similarity=0.9, spu="A"), Neighbour(id="a2", similarity=0.8, spu="A"),
            Neighbour(id="b", similarity=0.7, spu="B")]
    assert [n.id for n in trusted_of(hits, 0.9, 0.8, 3)] == ["a1", "a2"]
    assert [n.id for n in trusted_of(hits, 0.9, 0.8, 1)] == ["a1"]
    assert trusted_of(hits, 0.7, 0.8, 3) == []


def vote_on(hits: list[Neighbour], min_confidence: float, **request) -> CategoryGuess:
    return KnnVote().categorize(CategoryRequest(neighbours=hits, min_confidence=min_confidence, **request))


def test_knn_vote_abstains_below_the_calibrated_confidence():
    hits = [Neighbour(id="a", similarity=0.9, category="Milk", category_path=["Dairy", "Milk"]),
            Neighbour(id="b", similarity=0.88, category="Juice")]
    sure = vote_on(hits, 0.5, calibrate=lambda category, share, top: (0.9, 0.8))
    assert sure.name == "Milk" and sure.path == ["Dairy", "Milk"] and sure.runner_up == "Juice"
    assert sure.confidence == 0.8  # the stated confidence; the offer was decided on the first
    offered = vote_on(hits, 0.5, calibrate=lambda category, share, top: (0.6, 0.2))
    assert offered.name == "Milk" and offered.confidence == 0.2  # offered for the seller to confirm, stated unsure
    unsure = vote_on(hits, 0.5, calibrate=lambda category, share, top: (0.3, 0.3))
    assert unsure.name is None and unsure.runner_up == "Milk"
    assert vote_on(hits, 1.0, calibrate=lambda category, share, top: (1.0, 1.0)).name is None



def test_the_text_read_on_the_pack_weighs_in_the_category_vote():
    """A yoghurt pack that looks most like the one soy milk the catalog has, but reads 'Valio': the hit
    its words name outweighs the closer-looking one, while its similarity stays the photos' own."""
    soy = Neighbour(id="s", similarity=0.72, category="Soy-Milk")
    yoghurt = Neighbour(id="y", similarity=0.70, category="Yoghurt")
    calibrate = {"calibrate": lambda category, share, top: (share, share)}
    assert vote_on([soy, yoghurt], 0.0, **calibrate).name == "Soy-Milk"
    read = yoghurt.model_copy(update={"text_match": 0.5})
    assert read.similarity == 0.70 and read.evidence == pytest.approx(0.85)
    assert vote_on([soy, read], 0.0, **calibrate).name == "Yoghurt"


@settings(max_examples=200, deadline=None)
@given(similarity=st.floats(-1, 1), match=st.floats(0, 1), more=st.floats(0, 1))
def test_a_text_match_only_ever_moves_a_hit_towards_a_perfect_one(similarity, match, more):
    hit = Neighbour(id="a", similarity=similarity, text_match=match)
    assert similarity <= hit.evidence <= 1.0 + 1e-9
    assert Neighbour(id="a", similarity=similarity).evidence == similarity  # nothing read: the photos alone
    assert Neighbour(id="a", similarity=similarity, text_match=min(1.0, match + more)).evidence >= hit.evidence - 1e-12

def records_of(x, y, attrs=None):
    metas = [{"listing_id": f"l{i}", "spu": f"p{c}", "category": f"c{c % 3}",
              "attributes": json.dumps(attrs[i] if attrs else {})} for i, c in enumerate(y)]
    listing = np.array([m["listing_id"] for m in metas])
    return Records(ids=[f"l{i}#0" for i in range(len(y))], vectors=x, listing=listing, metas=metas)


def test_label_kind_prefers_spu_groups_then_categories():
    x, y = blobs()
    assert label_kind(records_of(x, y).metas) == "spu"
    solo = [{**m, "spu": ""} for m in records_of(x, y).metas]
    assert label_kind(solo) == "category"
    assert label_kind([{**m, "category": ""} for m in solo]) == "none"


def test_fit_calibrates_and_round_trips(tmp_path, monkeypatch):
    from ipl_tools.catalog import model as learned
    from ipl_tools.catalog.embedding import DIM

    x, y = blobs(n_classes=8, per_class=25, dim=DIM, spread=0.06)
    rng = np.random.default_rng(0)
    y = np.where(rng.uniform(size=len(y)) < 0.15, rng.integers(0, 8, len(y)), y)  # some mislabelled photos
    attrs = [{"Brand": f"brand{c // 2}"} for c in y]
    model = fit(records_of(x, y, attrs))
    assert model.label_kind == "spu" and model.matrix.shape == (DIM, 7)
    assert model.gate is not None and model.category is not None and "products:Brand" in model.attributes
    assert 0.6 < model.report["held_out_identical@1"] < 0.95  # the mislabelled ones miss
    assert model.identity_probability(0.95, 0.4) > model.identity_probability(0.5, 0.01)
    model.save(tmp_path)
    again = IndexModel.load(tmp_path)
    assert again.count == model.count and np.allclose(again.matrix, model.matrix)
    assert again.gate == model.gate and again.idf == model.idf
    assert again.probes.keys() == model.probes.keys() == {"category", "Brand"}
    assert np.allclose(again.probes["Brand"].weights, model.probes["Brand"].weights)
    assert not model.blends_category and "probe:Brand" in model.attributes  # spu groups: the category is voted alone
    assert IndexModel.load(tmp_path / "nowhere") is None
    monkeypatch.setattr(learned, "MODEL_FORMAT", learned.MODEL_FORMAT + 1)
    assert IndexModel.load(tmp_path) is None  # saved by an earlier version: the index refits it


def test_probe_learns_what_a_nearest_neighbour_misses():
    """Labels carried by a few directions among many noisy ones: the probe finds the directions,
    1-NN in the raw space drowns in the noise."""
    x, y = blobs(n_classes=5, per_class=40, dim=256, spread=0.5, seed=1)
    train, test = np.arange(len(y)) % 4 != 0, np.arange(len(y)) % 4 == 0
    probe = fit_probe(x[train], [f"c{c}" for c in y[train]])
    predicted = np.array(probe.classes)[probe.probabilities(x[test]).argmax(1)]
    probe_acc = float((predicted == np.array([f"c{c}" for c in y[test]])).mean())
    assert probe_acc > nn_accuracy(x[train], y[train], x[test], y[test]) + 0.1
    listing = probe.distribution(x[test][:3])
    assert abs(sum(listing.values()) - 1) < 1e-5 and set(listing) == set(probe.classes)
    assert fit_probe(x, ["only"] * len(x)) is None and fit_probe(x, [None] * len(x)) is None


def test_blend_averages_distributions():
    assert blend({"Tshirts": 0.6, "Sweaters": 0.4}, {"Sweaters": 0.9, "Tshirts": 0.1}) == ("Sweaters", 0.65)
    assert blend({}) == (None, 0.0)
    assert blend({"Tshirts": 0.6, "Sweaters": 0.4}, {"Sweaters": 0.9, "Tshirts": 0.1}, weights=(9, 1)) == \
        ("Tshirts", pytest.approx(0.55))
    assert blend_category({"Tshirts": 0.6, "Sweaters": 0.4}, {"Sweaters": 0.6, "Tshirts": 0.4}, 0.7)[0] == "Sweaters"
    # the probe's say in a category grows with the photos it learned it from: one Sweaters photo, 90 Tshirts
    votes, probe = {"Tshirts": 0.2, "Sweaters": 0.8}, {"Tshirts": 0.9, "Sweaters": 0.1}
    few = blend_category(votes, probe, 0.7, {"Tshirts": 90, "Sweaters": 1})
    assert few[0] == "Sweaters" and few[1] == pytest.approx((1 - 0.7 / 11) * 0.8 + 0.7 / 11 * 0.1)
    many = blend_category(votes, probe, 0.7, {"Tshirts": 90, "Sweaters": 90})
    assert many[0] == "Tshirts" and many[1] == pytest.approx(blend_category(votes, probe, 0.7 * 90 / 100)[1])
    hits = [Neighbour(id="a", similarity=0.9, category="Tshirts", category_path=["Topwear", "Tshirts"]),
            Neighbour(id="b", similarity=0.89, category="Sweaters")]
    guess = vote_on(hits, 0.5, calibrate=lambda category, share, top: (share, share), prior={"Sweaters": 1.0})
    assert guess.name == "Sweaters" and guess.path == ["Sweaters"]


def test_the_catalog_keeps_which_values_each_category_states(tmp_path):
    rows = [{"category": "Oat-Milk", "attributes": json.dumps({"Brand": "Oatly"})},
            {"category": "Milk", "attributes": {"Brand": "Arla", "Colour": ""}},
            {"category": "Milk", "attributes": {"Brand": "Garant"}}, {"category": "Banana"},
            {"attributes": {"Brand": "X"}}]
    table = stated_values(rows)
    assert table == {"Oat-Milk": {"Brand": ["oatly"]}, "Milk": {"Brand": ["arla", "garant"]}, "Banana": {}}
    grown = stated_values([{"category": "Oat-Milk", "attributes": {"Brand": "Önos"}}], into=table)
    assert grown["Oat-Milk"] == {"Brand": ["oatly", "onos"]} and table["Oat-Milk"] == {"Brand": ["oatly"]}
    model = IndexModel(count=1, label_kind="spu", mean=np.zeros(2), matrix=None, stated=grown)
    assert model.states("Oat-Milk", "Brand", "OATLY") and not model.states("Oat-Milk", "Brand", "Arla")
    assert not model.states("Banana", "Brand", "Arla")  # a category whose rows state no brand
    assert model.states("Kombucha", "Brand", "Arla") and model.states(None, "Brand", "Arla")  # none known: no check
    assert IndexModel(count=1, label_kind="spu", mean=np.zeros(2), matrix=None).states("Milk", "Brand", "Arla")
    model.save(tmp_path)
    assert IndexModel.load(tmp_path).stated == grown
