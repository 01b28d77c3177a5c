"""Extension points. A plugin implements any of these hooks and calls `register(name, factory)`.

What each kind's backend must offer is its protocol in `backends.py`. Factories, not instances:
a factory takes the run's Context and returns the backend; the registry calls it lazily, once per
distinct (name, settings), so heavy models never load at import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("ipl")
hookimpl = pluggy.HookimplMarker("ipl")

Register = Callable[[str, Callable[..., Any]], None]


@hookspec
def register_embedders(register: Register) -> None:
    """Image embedders (`backends.Embedder`): `embed(photos) -> np.ndarray (N, D)`, L2-normalised."""


@hookspec
def register_ocr_engines(register: Register) -> None:
    """OCR engines (`backends.OCREngine`): `read(photo) -> list[str]` of text lines."""


@hookspec
def register_nudity_detectors(register: Register) -> None:
    """Nudity detectors (`backends.NudityDetector`): `detect(photo) -> list[str]` of exposed-class labels found."""


@hookspec
def register_categorizers(register: Register) -> None:
    """Categorizers (`backends.Categorizer`): `categorize(CategoryRequest) -> CategoryGuess`."""


@hookspec
def register_searchers(register: Register) -> None:
    """Catalog searchers (`backends.Searcher`), factory `(index_dir, embedder) -> Searcher`: `search(photos, k,
    text)`, `lookalikes`, `identity`, `category_prior`, `distribution`, `colour_histogram`, `calibration`."""


@hookspec
def register_extractors(register: Register) -> None:
    """Attribute extractors (`backends.Extractor`): `extract(ExtractionRequest) -> dict[str, AttributeValue]`."""


@hookspec
def register_generators(register: Register) -> None:
    """Generators (`backends.GeneratorFactory`): `(model, base_url) -> ` a LangChain chat model that streams."""
