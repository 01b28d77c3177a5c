"""`--embedder clip:FOLDER`: a CLIP checkpoint on disk as the index's image embedder. A real CLIP
cannot be had offline, so a tiny random-weight one is built from a config and saved as a folder,
and loaded exactly as a user's would be; the index, the learned model, a listing and the real
LangGraph server (`ipl serve --embedder`) run on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from langgraph_sdk import get_sync_client

from helpers import QUERIES, SAMPLE, ipl_server
from ipl_graph import plugins
from ipl_graph.context import Context, absolute_backend
from ipl_graph.errors import UnknownBackendError, UserError
from ipl_graph.face.cli import main
from ipl_graph.graph import graph
from ipl_graph.policies import load_policy
from ipl_graph.state import InputState
from ipl_tools.catalog.embedding import colour_histogram, crop, part
from ipl_tools.catalog.index import build_catalog, read_listings
from ipl_tools.photos import load_rgb, resolve


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> str:
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = tmp_path_factory.mktemp("tiny-clip")
    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=16)
    CLIPVisionModelWithProjection(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


def test_a_catalog_indexed_and_listed_with_a_clip_checkpoint(clip_folder, tmp_path):
    embedder = f"clip:{clip_folder}"
    rows = [r for r in read_listings(SAMPLE / "listings.jsonl")][:40]
    catalog, report = build_catalog(tmp_path / "index", rows, embedder=embedder)
    assert report.added == sum(len(r["images"]) for r in rows) and report.fitted
    assert catalog.model().mean.shape == (16 + 192,)  # the projection, then the colour histogram

    photo = QUERIES / "Banana_001.jpg"
    vector = plugins.embedder(embedder).embed_images([load_rgb(str(photo), "banana")])
    expected = colour_histogram(crop(load_rgb(str(photo), "banana")))
    assert np.allclose(part(vector, "colour")[0], expected / np.linalg.norm(expected), atol=1e-5)

    listing = graph.invoke(InputState(photos=[str(photo)]),
                           context=Context(index_dir=str(tmp_path / "index"), embedder=embedder))
    assert listing["degraded"] is None and listing["title"]  # the catalog was searched (random weights: no facts)
    hits = plugins.searcher("chroma", str(tmp_path / "index"), embedder).search(
        [resolve(str(photo), load_policy().limits)], 5)
    assert len(hits) == 5 and all(-1.0 <= h.similarity <= 1.0 for h in hits)


def test_the_server_lists_with_the_embedder_it_is_given(clip_folder, tmp_path, monkeypatch):
    embedder = f"clip:{clip_folder}"
    build_catalog(tmp_path / "index", [r for r in read_listings(SAMPLE / "listings.jsonl")][:20], embedder=embedder)
    monkeypatch.chdir(Path(clip_folder).parent)  # a relative folder: the server, in its own folder, gets it whole
    assert absolute_backend(f"clip:{Path(clip_folder).name}") == embedder
    assert absolute_backend("efficientnet-lite0") == "efficientnet-lite0"
    with ipl_server(str(tmp_path / "index"), tmp_path / "server.log", "--embedder", f"clip:{Path(clip_folder).name}",
                    "--photos-dir", str(SAMPLE)) as (url, log):
        result = get_sync_client(url=url, timeout=120).runs.wait(
            None, "listing", input={"photos": [str(QUERIES / "Banana_001.jpg")]})
    assert result["degraded"] is None and result["title"], result  # the catalog searched with the CLIP vectors
    assert main(["serve", "--embedder", "resnet", "--index", str(tmp_path / "index")]) == 2


def test_bad_clip_folders_and_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        plugins.embedder(f"clip:{tmp_path / 'missing'}")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="not a CLIP checkpoint"):
        plugins.embedder(f"clip:{tmp_path}")
    with pytest.raises(UnknownBackendError, match="takes no argument"):
        plugins.embedder("efficientnet-lite0:fast")
