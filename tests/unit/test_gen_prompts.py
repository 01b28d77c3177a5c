"""Prompts: every file renders with the variables it declares; the generate node picks the seed's three
instruction types by mode and attaches the photos, scaled down, as data URLs."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from helpers import QUERIES, state_of
from ipl_graph.policies import load_policy
from ipl_graph.prompts import load_prompt, prompt_names, render
from ipl_graph.state import State
from ipl_tools.generate import build_messages, limits

BANANA = str(QUERIES / "Banana_001.jpg")


def test_every_prompt_renders_with_exactly_its_declared_variables():
    names = prompt_names()
    assert {"system", "image_only", "image_template", "image_template_refs"} <= set(names)
    for name in names:
        declared, _ = load_prompt(name)
        text = render(name, **{v: f"<{v}>" for v in declared})
        assert all(f"<{v}>" in text for v in declared) and "{" not in text.replace("{\n", "")
        with pytest.raises(ValueError):
            render(name, **{v: "x" for v in declared}, unexpected="x")


def state(**changes) -> State:
    photo = {"path": BANANA, "sha256": "0" * 64, "width": 0, "height": 0}
    return state_of(images=[photo], hint="ripe", template={"category": None, "attributes": ["Brand", "Colour"]},
                    **changes)


REF = {"id": "r1", "similarity": 0.9, "title": "Banana", "attributes": {"Brand": "Chiquita"}}


@pytest.mark.parametrize(
    "changes, mode, marker",
    [
        ({"mode": "image_only"}, "image_only", "Write the description of the item in the photos."),
        ({"category": "Banana", "mode": "image_template"}, "image_template", "State these attributes, in this order"),
        ({"category": "Banana", "trusted": [REF], "mode": "image_template_refs"}, "image_template_refs",
         "The same product is listed"),
    ],
)
def test_the_instruction_follows_the_mode(changes, mode, marker):
    s = state(**changes)
    system, human = build_messages(s, with_images=False)
    text = human.content[0]["text"]
    assert marker in text and "Seller's note: ripe" in text and "English" in system.content
    if mode == "image_template_refs":
        assert '"Brand": "Chiquita"' in text


def test_photos_go_as_scaled_down_jpeg_data_urls_only_to_multimodal_models():
    _, human = build_messages(state(), with_images=True, image_max_side=64)
    url = human.content[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.format == "JPEG" and max(image.size) == 64
    _, text_only = build_messages(state(), with_images=False)
    assert [p["type"] for p in text_only.content] == ["text"]


def test_generation_limits_come_from_the_policy():
    assert limits(load_policy()) == {"max_tokens": 256, "temperature": 0.7, "top_p": 0.9}
