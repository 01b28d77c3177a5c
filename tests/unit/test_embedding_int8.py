"""The int8 EfficientNet-Lite0 embedder: the fp32 vectors' shape and norm, close to them, its own name."""

import numpy as np
import pytest

from helpers import SAMPLE
from ipl_graph import plugins
from ipl_graph.policies import load_policy
from ipl_tools.photos import resolve


@pytest.fixture(scope="module")
def photos():
    paths = sorted((SAMPLE / "images").rglob("*.jpg"))[:: 40][:8]
    return [resolve(str(p), load_policy().limits) for p in paths]


def test_int8_vectors_are_close_to_fp32(photos):
    fp32 = plugins.get("embedder", "efficientnet-lite0").embed(photos)
    int8 = plugins.get("embedder", "efficientnet-lite0-int8").embed(photos)
    assert int8.shape == fp32.shape == (len(photos), 1776)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    cosine = (fp32 * int8).sum(axis=1)
    assert cosine.min() > 0.97, cosine
    assert not np.array_equal(fp32, int8)  # really the quantized network


def test_int8_is_a_named_embedder():
    assert {"efficientnet-lite0", "efficientnet-lite0-int8"} <= set(plugins.factories("embedder"))
    assert plugins.get("embedder", "efficientnet-lite0-int8").name == "efficientnet-lite0-int8"
