"""The template writer, moderation and truncation: pure text, no models."""

from __future__ import annotations

import json

import pytest
from langchain_core.messages import HumanMessage

from helpers import runtime
from ipl_graph.context import Context
from ipl_graph.policies import load_policy
from ipl_graph.state import State
from ipl_tools.facts import facts_of
from ipl_tools.moderate_stream import first_violation, moderate_stream
from ipl_tools.template_writer import TemplateChatModel, compose_title, write
from ipl_tools.truncate import cut

FACTS = {"lang": "en", "mode": "image_template", "category": "Tshirts", "product": None,
         "attributes": [["Brand", "Nike"], ["Colour", "White"], ["Gender", "Men"]], "seller_note": "worn twice"}


def test_writer_states_every_given_attribute_in_order_and_nothing_else():
    text = write(FACTS)
    assert text.index("Nike") < text.index("white") < text.index("men")
    assert "worn twice" in text
    bare = write({**FACTS, "attributes": [], "seller_note": ""})
    assert "Nike" not in bare and "white" not in bare.lower().replace("photos", "")
    assert "photos" in bare  # no note: condition is what the photos show, not a claim
    fitted = write({**FACTS, "attributes": [["Fit", "Regular Fit"], ["Neck", "Round Neck"], ["Fabric", "Cotton"]]})
    assert "regular fit, round neck, cotton fabric" in fitted  # not "regular fit fit"


def test_writer_phrasing_varies_across_listings_but_is_stable():
    texts = {write({**FACTS, "category": c}) for c in ["Tshirts", "Shirts", "Jeans", "Tops", "Skirts", "Shorts"]}
    openers = {t.split()[0] for t in texts}
    assert len(openers) > 1
    assert write(FACTS) == write(FACTS)


def test_writer_chinese():
    text = write({**FACTS, "lang": "zh"})
    assert text.startswith(("出Nike", "转让Nike", "闲置Nike")) and "适用Men" in text and "成色：worn twice" in text


def test_template_model_streams_tokens_that_add_up():
    model = TemplateChatModel()
    message = [HumanMessage(f"write\n```json\n{json.dumps(FACTS)}\n```")]
    chunks = [c.content for c in model.stream(message)]
    assert len(chunks) > 5
    assert "".join(chunks) == model.invoke(message).content == write(FACTS)


def test_title_prefers_the_identical_products_name():
    assert compose_title(FACTS) == "Nike White Tshirts"
    assert compose_title({**FACTS, "product": "Nike Dri-Fit Tee"}) == "Nike Dri-Fit Tee"
    unnamed = {**FACTS, "category": None, "attributes": []}
    assert compose_title(unnamed) == "Item" and compose_title({**unnamed, "lang": "zh"}) == "物品"
    assert "物品" in write({**unnamed, "lang": "zh"})


@pytest.mark.parametrize(
    "text, reason, bad_from",
    [
        ("Great shoes. Call me on +44 7700 900123 anytime.", "phone number", "Call"),
        ("Nice bag. Mail me at seller@example.com.", "e-mail address", "Mail"),
        ("Cute top. Add my WeChat: abc_12345 please.", "messenger id", "Add"),
        ("As an AI, I cannot see the photo. It is a bag.", "boilerplate", "As an AI"),
        ("Lovely watch. Guaranteed authentic!", "banned term", "Guaranteed"),
        ("好东西。加我微信详聊。", "contact details", "加我"),
        ("Barely used, selling the heroin kit.", "prohibited item", "Barely"),
    ],
)
def test_moderation_finds_the_first_bad_sentence(text, reason, bad_from):
    offset, why = first_violation(text, load_policy())
    assert reason in why
    assert offset == text.index(bad_from)


def test_moderation_passes_clean_text():
    assert first_violation("Selling my Arla milk. Condition as in the photos.", load_policy()) is None


def test_moderation_keeps_the_safe_part_and_flags(sample_index):
    state = State(photos=[], description="Selling my jacket. Text me on 0712 345 6789. Thanks.")
    update = moderate_stream(state, runtime(Context(index_dir=sample_index)))
    assert update["description"] == "Selling my jacket."
    assert update["moderation"].passed is False and update["moderation"].cut_at == 19
    assert "contact details" in update["degraded"]


def test_cut_at_sentence_word_and_never_inside_a_number():
    assert cut("One. Two three.", 100) == "One. Two three."
    assert cut("First sentence here. Second one is long.", 30) == "First sentence here."
    assert cut("A long line without a stop 123456789", 33) == "A long line without a stop..."
    chinese = "这是一件很好的衣服没有任何问题价格12345元可以小刀"
    short = cut(chinese, 20)
    assert len(short) <= 20 and short.endswith("…") and "1234" not in short[:-1][-3:]
    assert cut("一二三。四五六七八九十。", 8) == "一二三。"



def test_template_writer_states_nothing_the_grounding_check_would_flag():
    from ipl_tools.grounding import Grounding

    policy = load_policy()
    for lang in ("en", "zh"):
        for category in ["Tshirts", "Shirts", "Jeans", "Tops", "Skirts", "Shorts"]:
            facts = {**FACTS, "lang": lang, "category": category}
            state = State(category=category, hint=facts["seller_note"], attributes=dict(facts["attributes"]))
            assert first_violation(write(facts), policy, Grounding.of(state, policy)) is None
    planted = write(FACTS).replace("Nike", "Adidas")
    assert "ungrounded brand" in first_violation(planted, policy, Grounding.of(State(attributes={"Brand": "Nike"}),
                                                                                policy))[1]


def test_text_names_the_leaf_category_only_when_sure():
    from ipl_tools.facts import named_category

    policy = load_policy()
    least = policy.thresholds.name_category_min_confidence
    assert 0 < least < 1
    path = ["Footwear", "Flip Flops", "Flip Flops"]
    sure = State(category="Flip Flops", category_confidence=least, category_path=path)
    unsure = State(category="Flip Flops", category_confidence=least - 0.01, category_path=path)
    assert named_category(sure, policy) == "Flip Flops"
    assert named_category(unsure, policy) == "Footwear"  # never the leaf's own name one level up
    assert named_category(State(category="Sandals", category_confidence=0.1, category_path=["Sandal", "Sandals"]),
                          policy) is None
    assert named_category(State(), policy) is None
    juice = State(category="Juice", category_confidence=0.7, category_path=["Packages", "Juice"])
    assert "Packages" in policy.generation.unnamed_categories
    assert named_category(juice, policy) is None  # a catalog section, no name for a carton of juice
    assert "packages" not in write(facts_of(juice, policy)).casefold()
    assert "flip flops" not in write(facts_of(unsure, policy)).casefold()


def test_an_unsure_category_is_not_contradicted_by_the_word_its_hits_share():
    """A Juice guess too unsure to name, whose hits are mostly milks, is not written up as milk:
    the text never names a category other than the one the listing states (the sample's Chinese
    juice listing was titled 'Milk' under 'Category: Juice'); with no category stated the hits'
    shared word still names the thing."""
    from ipl_graph.schemas import Neighbour
    from ipl_tools.facts import thing_word

    policy = load_policy()
    hits = [Neighbour(id="1", similarity=0.61, category="Juice", category_path=["Packages", "Juice"],
                      title="Bravo Apple Juice"),
            *[Neighbour(id=str(i), similarity=0.5, category=c, category_path=["Packages", c], title=t)
              for i, (c, t) in enumerate([("Soy-Milk", "Alpro Fresh Soy Milk"), ("Soy-Milk", "Alpro Shelf Soy Milk"),
                                          ("Milk", "Garant Medium Fat Milk"), ("Juice", "Tropicana Juice Smooth")], 2)]]
    juice = State(category="Juice", category_confidence=0.3, category_path=["Packages", "Juice"], neighbours=hits)
    assert thing_word(juice, policy) is None
    assert "milk" not in write(facts_of(juice, policy)).casefold()
    assert thing_word(State(neighbours=hits), policy) == "Milk"  # nothing stated: the hits' word is the best there is
    milk = State(category="Milk", category_confidence=0.3, category_path=["Packages", "Milk"], neighbours=hits)
    assert thing_word(milk, policy) == "Milk"  # the stated category's own word is never left out
    brands = ["Valio", "Arla", "Yoggi", "Lindahls"]
    yoghurts = [Neighbour(id=str(i), similarity=0.5, category="Yoghurt", category_path=["Packages", "Yoghurt"],
                          title=f"{brand} Vanilla Yoghurt") for i, brand in enumerate(brands)]
    oat_milk = State(category="Oat-Milk", category_confidence=0.3, category_path=["Packages", "Oat-Milk"],
                     neighbours=yoghurts)
    assert thing_word(oat_milk, policy) is None  # hits of another category lend no flavour ('Vanilla') either
    tees = [Neighbour(id=str(i), similarity=0.8, category="t-shirt", category_path=["t-shirt"]) for i in range(4)]
    tee = State(category="t-shirt", category_confidence=0.8, category_path=["t-shirt"], neighbours=tees)
    assert thing_word(tee, policy) == "t-shirt"  # a hyphenated category is its own, whole
