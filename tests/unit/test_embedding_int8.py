"""The int8 EfficientNet-Lite0 embedder: the fp32 vectors' shape and norm, close to them, its own name."""

from pathlib import Path

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


def test_an_installed_ipl_calibrates_on_photos_it_ships():
    """The calibration photos come with the package (the tests run an installed IPL, `pip install
    .`), the sample catalog's own: the int8 model is the one a source checkout builds."""
    import ipl_tools.catalog
    from ipl_tools.catalog.embedding import CALIBRATION, CALIBRATION_PHOTOS

    assert CALIBRATION.parent == Path(ipl_tools.catalog.__file__).resolve().parent
    shipped = sorted(p.name for p in CALIBRATION.glob("*.jpg"))
    assert len(shipped) == CALIBRATION_PHOTOS
    sample = sorted((SAMPLE / "images").rglob("*.jpg"))
    assert shipped == sorted(p.name for p in sample[:: len(sample) // CALIBRATION_PHOTOS][:CALIBRATION_PHOTOS])
    assert (CALIBRATION / "LICENSE").read_text().startswith("MIT")
