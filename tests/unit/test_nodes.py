"""Each node on its own, with the real small models and the real Chroma index of the sample catalog."""

from __future__ import annotations

from helpers import QUERIES, apply, runtime, write_policy
from ipl_graph.context import Context
from ipl_graph.policies import load_policy
from ipl_graph.schemas import Template
from ipl_graph.state import State
from ipl_tools.categorize import categorize
from ipl_tools.check_safety import check_safety
from ipl_tools.extract_attributes import EvidenceExtractor, extract_attributes
from ipl_tools.fetch_template import fetch_template
from ipl_tools.gate_matches import gate_matches
from ipl_tools.search_similar import search_similar

BANANA = str(QUERIES / "Banana_001.jpg")
JUICE = str(QUERIES / "Bravo-Apple-Juice_001.jpg")


def run_until(node, photo: str, ctx: Context, hint: str = "") -> State:
    state = State(photos=[photo], hint=hint)
    for step in (check_safety, search_similar, categorize, gate_matches, extract_attributes, fetch_template):
        state = apply(state, step(state, runtime(ctx)))
        if step is node:
            return state
    raise AssertionError("node not in the pipeline")


def test_check_safety_reads_photo_and_passes_a_banana(ctx):
    state = run_until(check_safety, BANANA, ctx)
    assert state.safety is not None and state.safety.safe is True
    assert state.images[0].sha256 and state.images[0].width > 0


def test_check_safety_stops_prohibited_goods_in_the_hint(ctx):
    state = run_until(check_safety, BANANA, ctx, hint="comes with a replica pistol")
    assert state.safety is not None and state.safety.safe is False
    assert state.safety.reason == "prohibited item: 'pistol'"  # 'replica' alone is no item: 'replica watch' is
    assert state.degraded == "unsafe" and state.description == state.safety.guidance


def test_categorize_votes_the_right_category(ctx):
    state = run_until(categorize, BANANA, ctx)
    assert state.category == "Banana"
    assert 0.35 <= state.category_confidence <= 1.0


def test_search_finds_the_identical_product_first(ctx):
    state = run_until(search_similar, BANANA, ctx)
    sims = [n.similarity for n in state.neighbours]
    assert sims == sorted(sims, reverse=True)  # no text on a banana: the order is the photos' similarity
    assert len({n.spu for n in state.neighbours}) == len(state.neighbours)  # one hit per product
    assert state.neighbours[0].spu == "grocery_6"  # Banana
    assert len(state.neighbours) == ctx.top_k


def test_gate_trusts_the_top_hit_only_when_probably_identical(ctx, tmp_path):
    from ipl_tools.search_similar import searcher_for

    state = run_until(search_similar, BANANA, ctx)
    p = searcher_for(runtime(ctx)).identity(state.neighbours)
    assert 0.5 < p < 1.0  # the banana is unmistakable, yet a calibrated probability stays below 1
    strict = Context(index_dir=ctx.index_dir, policy=write_policy(tmp_path, thresholds={"spu_gate": min(p + 0.01, 1)}))
    assert gate_matches(state, runtime(strict))["trusted"] == []
    loose = Context(index_dir=ctx.index_dir, policy=write_policy(tmp_path, thresholds={"spu_gate": p - 0.001}))
    update = gate_matches(state, runtime(loose))
    assert [r["id"] for r in update["references"]] == [state.neighbours[0].id]


def test_gate_distrusts_a_top_hit_the_packs_text_contradicts(ctx, tmp_path):
    """The juice's top hit passes a loose gate; the same hits with 'orange' read on the pack (a word that
    names the catalog's orange juices, not this apple juice) pass nothing, while its own words do."""
    state = run_until(search_similar, JUICE, ctx)
    assert state.neighbours[0].title == "Bravo Apple Juice"
    loose = runtime(Context(index_dir=ctx.index_dir, policy=write_policy(tmp_path, thresholds={"spu_gate": 0.0})))
    for read, trusted in ((["BRAVO", "Apple juice"], True), (["ORANGES", "100%"], False), (["zzkq", "OD"], True)):
        update = gate_matches(apply(state, {"ocr_text": read}), loose)
        assert bool(update["trusted"]) is trusted, read


def test_references_vote_by_similarity_and_need_agreement():
    from ipl_graph.schemas import Neighbour

    refs = [
        Neighbour(id="a", similarity=0.9, attributes={"Brand": "Arla", "Colour": "White"}),
        Neighbour(id="b", similarity=0.85, attributes={"Brand": "Arla", "Colour": "Blue"}),
        Neighbour(id="c", similarity=0.8, attributes={"Brand": "Garant"}),
    ]
    found = EvidenceExtractor().from_references(refs, load_policy().thresholds.reference_min_agreement)
    assert found["Brand"].value == "Arla" and found["Brand"].source == "reference:a"
    assert "Colour" not in found  # White holds 0.9 of 2.55: no agreement, no value


def test_brand_read_off_the_packaging_must_be_known_to_the_catalog():
    from ipl_graph.schemas import Neighbour

    near = [Neighbour(id="x", similarity=0.6, attributes={"Brand": "Bravo"})]
    extractor = EvidenceExtractor()
    brand = extractor.brand_from_ocr(["88R", "BRAVO", "APPLE JUICE"], near)
    assert brand is not None and brand.value == "Bravo" and brand.source == "ocr:BRAVO"
    assert extractor.brand_from_ocr(["TROPICANA"], near) is None


def test_extract_states_nothing_without_evidence(ctx, tmp_path):
    strict = Context(index_dir=ctx.index_dir, policy=write_policy(tmp_path, thresholds={"spu_gate": 1.0}))
    state = run_until(extract_attributes, BANANA, strict)
    assert state.trusted == []
    assert set(state.attributes) == set(state.evidence)
    assert all(source == "photo" or source.startswith(("ocr:", "similar:", "products:"))
               for source in state.evidence.values())


def test_fetch_template_known_category_and_generic_fallback(ctx, tmp_path):
    state = run_until(fetch_template, JUICE, ctx)
    assert state.template == Template(category="Juice", attributes=["Brand"], generic=False)
    abstain = Context(index_dir=ctx.index_dir,
                      policy=write_policy(tmp_path, thresholds={"category_min_confidence": 1.0}))
    state = run_until(fetch_template, JUICE, abstain)
    assert state.category is None
    assert state.template is not None and state.template.generic is True
    assert state.template.attributes[0] == "Brand"


def test_a_photo_the_index_cannot_place_gets_no_brand_from_the_catalog(ctx, tmp_path):
    """Hits that agree on a brand say nothing of a photo whose category is unsure (a T-shirt before a
    grocery catalog: its hits are milks of the catalog's biggest brand): a brand stands then only
    where the photo itself spells it."""
    no_references = Context(index_dir=ctx.index_dir, policy=write_policy(tmp_path, thresholds={"spu_gate": 1.0}))
    placed = run_until(gate_matches, str(QUERIES / "Arla-Standard-Milk_001.jpg"), no_references)
    sure = apply(placed, extract_attributes(placed, runtime(no_references)))
    assert sure.attributes.get("Brand") == "Arla" and sure.evidence["Brand"].startswith("products:")
    unsure = apply(placed, {"category_confidence": 0.01})
    unsure = apply(unsure, extract_attributes(unsure, runtime(no_references)))
    assert "Brand" not in unsure.attributes, unsure.evidence


def test_a_voted_brand_the_catalog_never_states_for_the_category_is_left_out(ctx, tmp_path):
    """The sample catalog's oat milks are all Oatly's: an Arla milk carton voted Arla by its hits keeps
    the brand as a milk and loses it as an oat milk (the long tail's votes lean to the head brand),
    while a category the catalog has no rows of checks nothing."""
    no_references = Context(index_dir=ctx.index_dir, policy=write_policy(tmp_path, thresholds={"spu_gate": 1.0}))
    placed = run_until(gate_matches, str(QUERIES / "Arla-Standard-Milk_001.jpg"), no_references)
    assert placed.category == "Milk"
    milk = apply(placed, extract_attributes(placed, runtime(no_references)))
    assert milk.attributes.get("Brand") == "Arla" and milk.evidence["Brand"].startswith("products:")
    oat = apply(placed, {"category": "Oat-Milk"})
    oat = apply(oat, extract_attributes(oat, runtime(no_references)))
    assert oat.attributes.get("Brand") != "Arla", oat.evidence
    unknown = apply(placed, {"category": "Kombucha"})
    unknown = apply(unknown, extract_attributes(unknown, runtime(no_references)))
    assert unknown.attributes.get("Brand") == "Arla"
