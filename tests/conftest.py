"""Shared fixtures: the bundled sample catalog indexed once per session with the real embedder."""

from __future__ import annotations

import pytest

from helpers import SAMPLE
from ipl_graph import offline
from ipl_graph.context import Context
from ipl_graph.policies import load_policy

offline.apply()  # setdefault only: the test run must not call home



@pytest.fixture(scope="session")
def sample_index(tmp_path_factory) -> str:
    from ipl_graph import plugins
    from ipl_tools.catalog.index import Catalog, read_listings

    directory = tmp_path_factory.mktemp("index")
    catalog = Catalog(directory, create=True)
    catalog.add_listings(read_listings(SAMPLE / "listings.jsonl"), plugins.get("embedder", "efficientnet-lite0").embed,
                         load_policy())
    return str(directory)


@pytest.fixture
def ctx(sample_index) -> Context:
    return Context(index_dir=sample_index)
