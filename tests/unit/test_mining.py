"""Template mining: fill rate, usual order, and no attribute that restates the category."""

from __future__ import annotations

from ipl_tools.catalog.mining import mine_templates


def test_templates_keep_filled_attributes_in_their_usual_order():
    rows = [
        {"category": "Tshirts", "attributes": {"Brand": "Nike", "Colour": "Red", "Fit": "Slim"}},
        {"category": "Tshirts", "attributes": {"Brand": "Puma", "Colour": "Blue"}},
        {"category": "Tshirts", "attributes": {"Colour": "Black", "Neck": "Round"}},
        {"category": None, "attributes": {"Brand": "Ignored"}},
    ]
    mined = mine_templates(rows)
    assert mined["categories"] == {"Tshirts": ["Brand", "Colour"]}  # Fit and Neck: 1 of 3
    assert mined["generic"] == ["Brand", "Colour"]


def test_an_attribute_that_names_categories_is_left_out():
    heels = [{"category": "Heels", "attributes": {"Colour": "Black", "Type": "Sandals"}} for _ in range(10)]
    sandals = [{"category": "Sandals", "attributes": {"Colour": "Brown", "Type": "Slides"}} for _ in range(30)]
    mined = mine_templates([*heels, *sandals])
    assert mined["categories"] == {"Heels": ["Colour"], "Sandals": ["Colour"]}
    few = mine_templates([*heels[:3], *sandals])  # 3 of 33: a coincidence, not a restatement
    assert few["categories"]["Sandals"] == ["Colour", "Type"]
