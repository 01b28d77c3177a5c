"""Rows added to a fitted catalog: projected by its model as it is while the catalog grows a little,
refitted when it grows more, brings a category the model lacks, or `--refit` asks: real Chroma, real
embedder."""

from __future__ import annotations

import contextlib
import copy
import shutil

import numpy as np
import pytest

from helpers import SAMPLE
from ipl_graph import plugins
from ipl_graph.policies import load_policy
from ipl_tools.catalog.config import LEARN
from ipl_tools.catalog.index import Catalog, IndexReport, build_catalog, read_listings, spans
from ipl_tools.catalog.text import listing_text, text_match, trigrams
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
    new[0]["attributes"] = {**(new[0].get("attributes") or {}), "Brand": "Zyqxo"}
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
    assert model.states(category, "Brand", "Zyqxo") and not before.states(category, "Brand", "Zyqxo")
    # the new row's text is counted in: OCR reading its new brand (no trigram the catalog had) matches it
    read, title = trigrams("ZYQXO"), trigrams(listing_text(new[0]))
    assert text_match(read, title, model.idf) > 0 == text_match(read, title, before.idf)
    assert "zyqxo" in model.words and "zyqxo" not in before.words
    assert model.documents == before.documents + len(new)
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


def saved_through(index_dir) -> set[int]:
    """The last record each of Chroma's segments has saved (its metadata segment, the HNSW graphs)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(index_dir / "chroma.sqlite3")) as db:
        return {seq for _, seq in db.execute("SELECT segment_id, seq_id FROM max_seq_id")}


def test_the_graph_is_saved_with_the_last_photo(tmp_path):
    """Chroma saves a collection's HNSW graph every `sync_threshold` records and keeps the rest in its
    log for each new reader to insert again (~0.13 s of every cold listing): the writes are cut so
    that the last one saves it. The vectors are random (what is written matters here, not the
    embedder); the photo files and Chroma are real."""
    photo = str(SAMPLE / "images" / "Banana_001.jpg")
    # 1,500: written 64 at a time (as before), Chroma saves the graph at 1,024 and leaves 476 in its log
    rows = [{"id": f"r{i}", "images": [photo], "title": "Banana", "category": "Banana"} for i in range(1500)]
    rng = np.random.default_rng(0)

    def embed(photos):
        x = rng.standard_normal((len(photos), 1776)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    catalog = Catalog(tmp_path / "index", create=True)
    report = IndexReport()
    with catalog._locked():
        catalog._add_new(rows, embed, load_policy(), 64, lambda n: None, report, workers=2)
    assert report.added == 1500 and catalog.count() == 1500
    assert len(saved_through(tmp_path / "index")) == 1  # the graph as far as the metadata: nothing left to insert


def test_spans_end_with_a_write_that_saves():
    assert spans(2721, 5461, 1000) == [(0, 2721)]
    assert spans(6000, 5461, 1000) == [(0, 5000), (5000, 6000)]
    assert spans(11000, 5461, 1000) == [(0, 5461), (5461, 10000), (10000, 11000)]
    assert spans(500, 300, 1000) == [(0, 300), (300, 500)]  # fewer than `last`: as they come
    assert spans(0, 300, 1000) == []
