"""The price suggestion: a similarity-weighted range over the references, in their currency."""

from __future__ import annotations

import pytest

from ipl_graph.schemas import Neighbour
from ipl_tools.price import suggest_price, weighted_quantile


def ref(id_, sim, price, currency="INR", category="Tshirts"):
    return Neighbour(id=id_, similarity=sim, price=price, currency=currency, category=category)


def test_identical_references_give_a_weighted_range():
    price = suggest_price([ref("a", 0.9, 1000), ref("b", 0.8, 1200), ref("c", 0.3, 5000)])
    assert price["kind"] == "identical" and price["currency"] == "INR"
    assert 1000 <= price["low"] <= price["high"] < 5000  # the weak reference barely moves the range
    assert price["basis"] == ["a", "b", "c"]


def test_one_reference_is_a_point_and_other_currencies_are_left_out():
    price = suggest_price([ref("a", 0.9, 800), ref("b", 0.85, 10, "EUR")])
    assert (price["low"], price["high"], price["basis"]) == (800, 800, ["a"])


def test_no_priced_basis_no_price():
    assert suggest_price([]) is None
    assert suggest_price([ref("a", 0.9, None)]) is None
    similar = [ref(f"s{i}", 0.7, 500 + 100 * i) for i in range(4)]
    assert suggest_price([], similar, category=None) is None  # no category: look-alikes are no basis
    assert suggest_price([], similar[:2], category="Tshirts") is None  # too few
    assert suggest_price([], [ref("x", 0.9, 99, category="Shoes")] * 3, category="Tshirts") is None


def test_same_category_lookalikes_are_a_basis_said_as_such():
    similar = [ref(f"s{i}", 0.7, 500 + 100 * i) for i in range(4)]
    price = suggest_price([], similar, category="Tshirts")
    assert price["kind"] == "similar" and 500 <= price["low"] < price["high"] <= 800


def test_weighted_quantile():
    assert weighted_quantile([1, 2, 3], [1, 1, 1], 0.5) == pytest.approx(2)
    assert weighted_quantile([1, 10], [9, 1], 0.5) < 2
