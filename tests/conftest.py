"""Shared fixtures: the bundled sample catalog indexed once per session with the real embedder."""

from __future__ import annotations

import pytest

from helpers import SAMPLE
from ipl_graph import taming
from ipl_graph.context import Context

taming.apply()  # setdefault only: the test run must not call home



@pytest.fixture(scope="session")
def sample_index(tmp_path_factory) -> str:
    from ipl_tools.catalog.index import build_catalog, read_listings

    directory = tmp_path_factory.mktemp("index")
    build_catalog(directory, read_listings(SAMPLE / "listings.jsonl"))
    return str(directory)


@pytest.fixture
def ctx(sample_index) -> Context:
    return Context(index_dir=sample_index)
