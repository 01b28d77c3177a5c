"""Rows added to a fitted catalog: projected by its model as it is while the catalog grows a little,
refitted when it grows more, brings a category the model lacks, or `--refit` asks: real Chroma, real
embedder."""

from __future__ import annotations

import copy
import shutil

import pytest

from helpers import SAMPLE
from ipl_graph import plugins
from ipl_graph.policies import load_policy
from ipl_tools.catalog.config import LEARN
from ipl_tools.catalog.index import Catalog, build_catalog, read_listings
from ipl_tools.photos import resolve

pytestmark = pytest.mark.slow


def relisted(rows: list[dict], n: int, category: str | None = None) -> list[dict]:
    """`n` sample rows again under new ids (and, given, another category): new catalog listings."""
    out = []
    for row in rows[:n]:
        again = copy.deepcopy(row)
        again["id"] = f"again-{row['id']}"
        if category:
            again["category"] = category
        out.append(again)
    return out


@pytest.fixture
def fitted(sample_index, tmp_path) -> Catalog:
    shutil.copytree(sample_index, tmp_path / "index")
    return Catalog(tmp_path / "index", create=True)


def learned_count(catalog: Catalog) -> int:
    with catalog._reading():
        return catalog._collection(catalog.model().collection).count()


def test_a_few_rows_are_projected_by_the_model_as_it_is(fitted):
    rows = list(read_listings(SAMPLE / "listings.jsonl"))
    before = fitted.model()
    fitted_count = before.report["fitted_count"]
    new = relisted(rows, 6)
    photos = sum(len(r["images"]) for r in new)
    assert photos <= LEARN.refit_growth * fitted_count
    _, report = build_catalog(fitted, new)
    assert report.added == photos and report.extended and not report.fitted
    model = fitted.model()
    assert model.count == fitted.count() == fitted_count + photos == learned_count(fitted)
    assert model.collection == before.collection and model.report["fitted_count"] == fitted_count
    assert not fitted._stale()  # a reader takes the model as whole
    category = new[0]["category"]
    added = sum(len(r["images"]) for r in new if r["category"] == category)
    assert model.category_photos[category] == before.category_photos[category] + added  # the vote's counts
    vectors = plugins.embedder("efficientnet-lite0").embed([resolve(new[0]["images"][0], load_policy().limits)])
    hits = fitted.nearest(vectors, 5, learned=True)[0]
    assert new[0]["id"] in {meta["listing_id"] for _, meta in hits}  # found among the learned photos


def test_more_growth_a_new_category_or_refit_asked_refit(fitted):
    rows = list(read_listings(SAMPLE / "listings.jsonl"))
    _, report = build_catalog(fitted, relisted(rows, 2, category="Kombucha"))
    assert report.fitted and not report.extended and "Kombucha" in fitted.model().category_photos
    grown = [r for r in relisted(rows, len(rows)) if not r["id"].startswith("again-again")]
    _, report = build_catalog(fitted, grown[2:40])  # ~45% more photos
    assert report.fitted and not report.extended
    assert fitted.model().report["fitted_count"] == fitted.count() == learned_count(fitted)
    _, report = build_catalog(fitted, grown[40:42], refit=True)
    assert report.fitted and not report.extended
