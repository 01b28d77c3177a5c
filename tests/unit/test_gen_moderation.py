"""Stream moderation: guardrails validators, where a planted violation is caught in a stream, the model
stopped early, and the grounding check on brands, model codes, capacities, sizes and colours."""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from fakes import FakeChatModel
from helpers import state_of
from ipl_graph.policies import load_policy
from ipl_tools.generate import stream_text
from ipl_tools.grounding import Grounding
from ipl_tools.moderate_stream import (
    RULES,
    StreamModerator,
    check_sentence,
    first_violation,
    guard,
    sentences,
)

POLICY = load_policy()


@pytest.fixture(scope="module", autouse=True)
def loaded_guard():
    return guard()  # guardrails imports once (seconds); the stream checks wait for it otherwise


def test_the_guard_runs_one_guardrails_validator_per_rule(loaded_guard):
    from guardrails.validator_base import Validator

    validators = loaded_guard._validators
    assert [v.rail_alias for v in validators] == list(RULES)
    assert all(isinstance(v, Validator) for v in validators)


SHIRT = state_of(
    category="Tshirts", hint="size M, worn twice",
    attributes={"Brand": "Nike", "Colour": "White"}, evidence={"Brand": "ocr:NIKE", "Colour": "photo"},
    trusted=[{"id": "r1", "similarity": 0.9, "title": "Nike Dri-Fit Tee", "description": "Breathable 100g cotton tee.",
              "attributes": {"Brand": "Nike"}}],
    neighbours=[{"id": "n1", "similarity": 0.6, "attributes": {"Brand": "Adidas"}},
                {"id": "n2", "similarity": 0.5, "attributes": {"Brand": "Uniqlo"}}],
)


@pytest.mark.parametrize(
    "sentence, reason",
    [
        ("Selling my Adidas tee.", "ungrounded brand: 'Adidas'"),  # a catalog neighbour's brand, not this item's
        ("Great Samsung quality.", "ungrounded brand: 'Samsung'"),  # a brand from the policy's list
        ("A red tee, barely worn.", "ungrounded colour: 'red' (evidence: White)"),
        ("黑色T恤，很新。", "ungrounded colour: '黑色'"),
        ("Fits like an XL.", "ungrounded size: 'XL'"),
        ("Comes in size L.", "ungrounded size: 'L'"),
        ("It weighs 250 g.", "ungrounded capacity: '250 g'"),
        ("The 256GB version.", "ungrounded capacity: '256GB'"),
        ("Model DF-2231 from last year.", "ungrounded model: 'DF-2231'"),
    ],
)
def test_grounding_flags_claims_the_evidence_does_not_carry(sentence, reason):
    assert reason in check_sentence(sentence, POLICY, Grounding.of(SHIRT, POLICY))


@pytest.mark.parametrize(
    "sentence",
    [
        "Selling my Nike Dri-Fit tee, white, size M.",  # reference title, evidenced colour, the seller's size
        "NIKE tee in white colour.",  # brand as the packaging spells it
        "白色T恤，尺码M，穿过两次。",  # zh colour word for the evidenced White
        "Light 100 g cotton, worn twice in the 90s, 2nd owner.",  # reference fact; ordinals and decades
        "Selling my tee. Condition is as you see in the photos.",
    ],
)
def test_grounding_passes_what_the_evidence_supports(sentence):
    assert check_sentence(sentence, POLICY, Grounding.of(SHIRT, POLICY)) is None


def test_a_planted_wrong_brand_is_caught_at_its_sentence():
    text = "Selling my Nike tee, worn twice. It is an Adidas collab. Happy to answer questions."
    offset, reason = first_violation(text, POLICY, Grounding.of(SHIRT, POLICY))
    assert offset == text.index("It is") and reason == "ungrounded brand: 'Adidas'"


def test_grounding_can_be_switched_off_by_policy():
    relaxed = POLICY.model_copy(update={"moderation": POLICY.moderation.model_copy(update={"grounding": False})})
    assert first_violation("It is an Adidas collab.", relaxed, Grounding.of(SHIRT, relaxed)) is None


@pytest.mark.parametrize(
    "text, bad",
    [
        ("Nice bag. Barely used. Email seller@example.com for more. Thanks.", "Email"),
        ("Nice bag. Visit www.my-shop.com to see more. Thanks.", "Visit"),
        ("Nice bag. Let's deal outside the app, cheaper. Thanks.", "Let's"),
        ("Nice bag. QQ: 12345678 anytime. Thanks.", "QQ"),
        ("Nice bag. I'm sorry, but I can't see the photo. Thanks.", "I'm sorry"),
        ("好包。加我微信详聊。谢谢。", "加我"),
        ("Nice bag. It is a replica watch band. Thanks.", "It is"),
        ("Nice bag. Best price ever! Thanks.", "Best"),
    ],
)
def test_stream_moderator_stops_at_the_sentence_that_completes_a_violation(text, bad):
    moderator = StreamModerator(POLICY)
    bad_end = text.index(bad) + len(sentences(text[text.index(bad):])[0])
    # one character at a time, the worst case for a splitter
    caught_at = next(i for i, ch in enumerate(text) if moderator.feed(ch))
    assert moderator.violation is not None and moderator.violation[0] == text.index(bad)
    # caught once the bad sentence is complete (its terminator seen and, for '.', the space after)
    assert bad_end - 1 <= caught_at <= bad_end


def test_a_decimal_point_does_not_end_a_sentence_mid_stream():
    moderator = StreamModerator(POLICY)
    assert moderator.feed("Weighs 3.") is None and moderator.checked == 0  # "3." may be "3.5"
    assert moderator.feed("5 kg. Call +44 7700 900123 now. ") is not None
    assert moderator.violation == (len("Weighs 3.5 kg. "), "contact details (phone number)")


def test_stream_text_stops_the_model_at_the_first_bad_sentence():
    words = "Great shoes, barely worn. Call me on +44 7700 900123 anytime. " + "More words here. " * 40
    model = FakeChatModel.saying(words)
    text = stream_text(model, [HumanMessage("write")], 10.0, StreamModerator(POLICY))
    assert text.startswith("Great shoes, barely worn. Call me on +44 7700 900123 anytime.")
    assert model.yielded < 15 < len(words.split())  # stopped, not drained
    assert first_violation(text, POLICY)[0] == text.index("Call")  # what moderate_stream will cut


def test_stream_text_without_violations_returns_everything():
    reply = "Selling my jacket. Worn twice. Happy to answer questions."
    model = FakeChatModel.saying(reply)
    text = stream_text(model, [HumanMessage("write")], 10.0, StreamModerator(POLICY))
    assert text == reply and model.yielded == 9
