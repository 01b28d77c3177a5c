"""`ipl index --ray` (issue #14): photos read and embedded with Ray Data on a local Ray cluster of one
CPU give the index the single-process path gives: the same ids, metadata and vectors, the same
quarantine, the same learned model, and so the same listing. And past `fit_sample` photos the model
is fitted on a seeded sample while every photo is still projected, counted and its text read."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections import Counter

import numpy as np
import pytest

from helpers import QUERIES, SAMPLE
from ipl_graph.context import Context
from ipl_graph.face.cli import main
from ipl_graph.graph import graph
from ipl_graph.state import InputState
from ipl_tools.catalog.fit import label_kind
from ipl_tools.catalog.index import Catalog, read_listings
from ipl_tools.catalog.text import document_frequency, idf, stated_values, vocabulary

pytestmark = pytest.mark.slow
POISONED = {"title": "Bravo juice add WeChat: juice_seller88", "description": "call 138 0013 8000"}


@pytest.fixture(scope="module")
def listings(tmp_path_factory) -> str:
    """The first 40 sample rows, one of them poisoned (quarantined), one with a missing photo and ten
    said to be sellers' photos."""
    path = tmp_path_factory.mktemp("rows") / "listings.jsonl"
    rows = list(read_listings(SAMPLE / "listings.jsonl"))[:40]
    rows[3] = rows[3] | POISONED
    rows[5] = rows[5] | {"images": [*rows[5]["images"], str(path.parent / "gone.jpg")]}
    rows[10:20] = [r | {"photo": "phone"} for r in rows[10:20]]  # said to be sellers' photos: viewed
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def indexes(listings, tmp_path_factory) -> tuple[str, str, str]:
    """(single-process index, Ray index, what `ipl index --ray` printed)."""
    folder = tmp_path_factory.mktemp("indexes")
    assert main(["index", listings, "--index", str(folder / "one")]) == 0
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["index", listings, "--index", str(folder / "ray"), "--ray", "--workers", "1"]) == 0
    return str(folder / "one"), str(folder / "ray"), err.getvalue()


def test_ray_indexes_what_one_process_indexes(indexes):
    one, ray, err = indexes
    a, b = Catalog(one).records(), Catalog(ray).records()
    assert a.ids == b.ids and len(a.ids) == 39  # 40 rows of a photo each, one quarantined
    assert a.metas == b.metas
    assert np.allclose(a.vectors, b.vectors, atol=1e-5)
    assert "quarantined grocery_" in err and "gone.jpg" in err and "added 39 images" in err
    ma, mb = Catalog(one).model(), Catalog(ray).model()
    assert ma.count == mb.count and np.allclose(ma.mean, mb.mean, atol=1e-5)
    assert {k: v for k, v in ma.report.items() if k != "fit_s"} == {k: v for k, v in mb.report.items() if k != "fit_s"}
    (va, of_a), (vb, of_b) = Catalog(one).views_of(a.ids), Catalog(ray).views_of(b.ids)
    assert len(of_a) == 2 * 10 and np.array_equal(of_a, of_b)  # every product rare; 10 sellers' photos
    assert np.allclose(va, vb, atol=1e-5)


def test_a_listing_from_the_ray_index_equals_the_single_process_one(indexes):
    one, ray, _ = indexes
    photos = [str(QUERIES / "Bravo-Apple-Juice_001.jpg")]
    listed = [graph.invoke(InputState(photos=photos), context=Context(index_dir=index)) for index in (one, ray)]
    fields = ("title", "description", "category", "category_confidence", "attributes", "references")
    assert {f: listed[0][f] for f in fields} == {f: listed[1][f] for f in fields}
    assert listed[0]["title"] and listed[0]["category"] == "Juice"


def test_past_the_fit_sample_the_model_sees_a_seeded_sample_and_projects_every_photo(indexes, tmp_path):
    shutil.copytree(indexes[0], tmp_path / "index")
    catalog = Catalog(tmp_path / "index", fit_sample=25)
    first, again = catalog.records(limit=25), catalog.records(limit=25)
    every = catalog.records()
    assert first.ids == again.ids and len(first.ids) == 25  # seeded
    assert [i for i in every.ids if i in set(first.ids)] == first.ids  # in the order they were added
    at = {i: n for n, i in enumerate(every.ids)}
    assert np.array_equal(first.vectors, every.vectors[[at[i] for i in first.ids]])
    assert first.metas == [every.metas[at[i]] for i in first.ids]
    model = catalog.fit()
    assert model.count == 39 and model.report["fit_sample"] == 25 and model.report["photos"] == 25
    # counts and text are every row's: the vote, the gate and the health report see the whole catalog
    products = Counter(m["spu"] for m in every.metas)
    assert model.report["photos_per"]["product"] == products != Counter(m["spu"] for m in first.metas)
    assert model.label_kind == label_kind(every.metas)  # every product here is one listing
    assert model.report["seller_photos"] == [10, 39]
    df, documents = document_frequency(every.metas)
    assert (model.trigram_df, model.documents) == (df, documents) and model.idf == idf(df, documents)
    assert model.words == vocabulary(every.metas) and model.stated == stated_values(every.metas)
    assert catalog.client.get_collection(model.collection).count() == 39
    assert Catalog(tmp_path / "index").model().count == 39  # a reader finds it whole, not stale
