"""Views of rare products' seller photos: embedded as centre crops when indexed, read by the fit's
projection, never searched or counted. Real Chroma, real embedder."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from helpers import SAMPLE
from ipl_graph import plugins
from ipl_graph.policies import load_policy
from ipl_tools.catalog.config import LEARN
from ipl_tools.catalog.embedding import VIEW_CROPS, centre_crop
from ipl_tools.catalog.index import Catalog, build_catalog, read_listings
from ipl_tools.photos import load_rgb, resolve

pytestmark = pytest.mark.slow


def rows_of(products: dict[str, int]) -> list[dict]:
    """Sample catalog rows of shop photos regrouped: `n` rows under spu `name` for each product."""
    sample = [r for r in read_listings(SAMPLE / "listings.jsonl") if r["photo"] == "phone"]
    out, at = [], 0
    for name, n in products.items():
        for row in sample[at : at + n]:
            row = copy.deepcopy(row)
            row["id"], row["spu"] = f"{name}-{row['id']}", name
            out.append(row)
        at += n
    return out


def test_only_a_rare_products_photos_get_views_and_the_fit_alone_reads_them(tmp_path):
    common = LEARN.view_max_photos + 3
    rows = rows_of({"common": common, "other": common, "rare": 1, "pair": 2})
    catalog, report = build_catalog(tmp_path / "index", rows)
    assert report.added == len(rows)
    assert report.views == 3  # the rare product's photo and the pair's two

    views = catalog.client.get_collection("views")
    got = views.get(include=["embeddings", "metadatas"])
    sources = sorted({m["source"] for m in got["metadatas"]})
    assert sources == sorted(f"{r['id']}#0" for r in rows if r["spu"] in ("rare", "pair"))
    assert len(got["ids"]) == 3 * len(VIEW_CROPS)

    # a view is the embedder's vector of the photo's centre crop
    rare = next(r for r in rows if r["spu"] == "rare")
    photo = resolve(rare["images"][0], load_policy().limits)
    embedder = plugins.get("embedder", "efficientnet-lite0")
    crops = embedder.embed_images([centre_crop(load_rgb(photo.path, photo.sha256), s) for s in VIEW_CROPS])
    stored = {i: np.asarray(v) for i, v in zip(got["ids"], got["embeddings"], strict=True)}
    for crop, vector in zip(VIEW_CROPS, crops, strict=True):
        assert np.allclose(stored[f"{rare['id']}#0@{crop:g}"], vector, atol=1e-4)

    # the fit read them; the photos are what is counted and searched
    model = catalog.model()
    assert model.report["views"] == 3 * len(VIEW_CROPS)
    assert model.count == catalog.count() == len(rows)
    assert model.photos_per("product") == {"common": common, "other": common, "rare": 1, "pair": 2}
    assert catalog.client.get_collection(model.collection).count() == len(rows)
    hits = catalog.nearest(embedder.embed([photo]), 50, learned=True)[0]
    assert all("@" not in str(m.get("image", "")) and m.get("listing_id") for _, m in hits)

    # indexed again, nothing is embedded twice
    again = Catalog(tmp_path / "index", create=True)
    report = again.add_listings(rows, embedder.embed, views=embedder.embed_views)
    assert (report.added, report.views) == (0, 0)
    assert views.count() == 3 * len(VIEW_CROPS)


def test_the_projection_is_fitted_on_the_views(tmp_path):
    """The same catalog with and without its views: the views move the projection."""
    rows = rows_of({"a": 8, "b": 8, "c": 1, "d": 1, "e": 2})
    with_views, _ = build_catalog(tmp_path / "with", rows)
    without = Catalog(tmp_path / "without", create=True)
    embedder = plugins.get("embedder", "efficientnet-lite0")
    without.add_listings(rows, embedder.embed)  # no `views`: none made
    assert with_views.model().report["views"] == 4 * len(VIEW_CROPS)
    assert without.model().report["views"] == 0
    assert not np.allclose(with_views.model().matrix, without.model().matrix, atol=1e-3)


def test_a_product_that_grows_past_the_limit_gets_no_more_views(tmp_path):
    catalog, report = build_catalog(tmp_path / "index", rows_of({"big": LEARN.view_max_photos + 1, "small": 1}))
    assert report.views == 1
    more = rows_of({"skip": LEARN.view_max_photos + 2, "small": LEARN.view_max_photos})[LEARN.view_max_photos + 2:]
    more = [r | {"id": f"more-{r['id']}"} for r in more]
    _, report = build_catalog(catalog, more)  # 1 photo indexed + 5 new: 6, past the limit
    assert report.added == LEARN.view_max_photos and report.views == 0


def test_a_catalog_without_products_makes_no_views(tmp_path):
    rows = [r | {"spu": None, "category": f"only-{r['id']}"} for r in rows_of({"x": 2, "y": 1})]
    catalog, report = build_catalog(tmp_path / "index", rows)
    assert report.added == 3 and report.views == 0 and catalog.model().report["views"] == 0


def test_a_rare_products_studio_shot_gets_no_views(tmp_path):
    studio = [r for r in read_listings(SAMPLE / "listings.jsonl") if r["photo"] == "catalog"][:2]
    rows = rows_of({"shop": 1}) + [r | {"spu": f"studio-{n}"} for n, r in enumerate(studio)]
    _, report = build_catalog(tmp_path / "index", rows)
    assert report.added == 3 and report.views == 1
