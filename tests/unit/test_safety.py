"""Safety backends: NudeNet (the optional extra, installed for tests) and the prohibited-goods list."""

from __future__ import annotations

import pytest

from helpers import QUERIES, apply, runtime
from ipl_graph import plugins
from ipl_graph.context import Context
from ipl_graph.hookspecs import hookimpl
from ipl_graph.policies import load_policy
from ipl_graph.state import State
from ipl_tools.check_safety import check_safety, find_prohibited
from ipl_tools.photos import resolve

THRESHOLDS = load_policy().thresholds
SCORES = (THRESHOLDS.nudity_min_score, THRESHOLDS.nudity_context_score)

BANANA = str(QUERIES / "Banana_001.jpg")


def test_an_exposed_part_needs_a_second_body_part():
    from ipl_tools.nudity import exposed_parts

    melon = [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.84}, {"class": "FEMALE_BREAST_COVERED", "score": 0.56},
             {"class": "MALE_GENITALIA_EXPOSED", "score": 0.35}]  # NudeNet on a cantaloupe in a shop
    assert exposed_parts(melon, *SCORES) == []
    person = [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.76}, {"class": "BELLY_EXPOSED", "score": 0.82}]
    assert exposed_parts(person, *SCORES) == ["FEMALE_BREAST_EXPOSED"]
    assert exposed_parts([*person[1:], {"class": "FACE_FEMALE", "score": 0.9}], *SCORES) == []  # nothing exposed


def test_a_chest_read_as_both_male_and_female_is_a_mans():
    from ipl_tools.nudity import exposed_parts

    # NudeNet on myntra-15784, a man in briefs cropped at the neck (boxes are x, y, w, h).
    briefs = [{"class": "BELLY_EXPOSED", "score": 0.82, "box": [65, 41, 92, 66]},
              {"class": "FEMALE_BREAST_EXPOSED", "score": 0.76, "box": [114, 0, 66, 45]},
              {"class": "FEMALE_GENITALIA_COVERED", "score": 0.65, "box": [89, 129, 47, 43]},
              {"class": "MALE_BREAST_EXPOSED", "score": 0.59, "box": [51, 0, 60, 41]}]
    assert exposed_parts(briefs, *SCORES) == []
    # A man beside a topless woman: her chest is elsewhere in the photo, and still counts.
    apart = [*briefs[:3], {"class": "MALE_BREAST_EXPOSED", "score": 0.59, "box": [400, 0, 60, 41]}]
    assert exposed_parts(apart, *SCORES) == ["FEMALE_BREAST_EXPOSED"]
    unsure = [*briefs[:3], {"class": "MALE_BREAST_EXPOSED", "score": 0.45, "box": [51, 0, 60, 41]}]
    assert exposed_parts(unsure, *SCORES) == ["FEMALE_BREAST_EXPOSED"]


def test_nudenet_runs_on_a_real_photo_and_auto_picks_it():
    pytest.importorskip("nudenet")
    detector = plugins.get("nudity", "auto")
    assert detector.name == "nudenet"
    assert detector.detect(resolve(BANANA, load_policy().limits), *SCORES) == []


def test_nudenet_reads_a_photo_once_and_judges_it_by_each_request_s_scores():
    """What NudeNet found is kept by the photo's hash (as OCR's lines are); the two rules are
    applied afresh, so a request with other thresholds gets its own answer."""
    pytest.importorskip("nudenet")
    from ipl_tools.nudity import NudeNetDetector

    detector = NudeNetDetector()
    calls = []
    real = detector._detector.detect
    detector._detector.detect = lambda path: calls.append(path) or real(path)
    photo = resolve(BANANA, load_policy().limits)
    assert detector.detect(photo, *SCORES) == detector.detect(photo, 0.0, 0.0) == []
    assert len(calls) == 1


class FlagEverything:
    """Stands in for a detector that finds nudity: no explicit test images are shipped."""

    name = "flag-everything"

    def detect(self, photo, min_score, context_score):
        return ["FEMALE_BREAST_EXPOSED"]


class FlaggingPlugin:
    @hookimpl
    def register_nudity_detectors(self, register):
        register("flag-everything", FlagEverything)


def test_nudity_ends_in_guidance(sample_index):
    name = plugins.register(FlaggingPlugin(), name="flagging")
    try:
        ctx = Context(index_dir=sample_index, nudity="flag-everything")
        state = State(photos=[BANANA])
        state = apply(state, check_safety(state, runtime(ctx)))
    finally:
        plugins.unregister(name)
    assert state.safety is not None and state.safety.safe is False and "nudity" in (state.safety.reason or "")
    assert "nudity:flag-everything" in state.safety.checks


@pytest.mark.parametrize(
    "texts, found",
    [
        (["Vintage rifle scope"], "rifle"),
        (["出售高仿包"], "高仿"),
        (["Rifleman T-shirt, size M"], None),  # whole words only for Latin script
        (["Ivory-coloured blouse"], None),
        (["Elephant ivory bangle"], "elephant ivory"),
        (["Apple juice"], None),
    ],
)
def test_prohibited_keywords(texts, found):
    assert find_prohibited(texts, load_policy()) == found
