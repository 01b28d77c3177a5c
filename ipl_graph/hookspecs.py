"""Extension points. A plugin implements any of these hooks and calls `register(name, factory)`.

Factories, not instances: a factory takes the run's Context and returns the backend; the registry
calls it lazily, once per distinct (name, settings), so heavy models never load at import.
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
    """Image embedders: `embed(photos) -> np.ndarray (N, D)`, L2-normalised."""


@hookspec
def register_ocr_engines(register: Register) -> None:
    """OCR engines: `read(photo) -> list[str]` of text lines."""


@hookspec
def register_nudity_detectors(register: Register) -> None:
    """Nudity detectors: `detect(photo) -> list[str]` of exposed-class labels found."""


@hookspec
def register_categorizers(register: Register) -> None:
    """Categorizers: `categorize(neighbours, min_confidence, calibrate, prior, prior_weight) -> CategoryGuess`."""


@hookspec
def register_searchers(register: Register) -> None:
    """Catalog searchers: `search(photos, k) -> list[Neighbour]`."""


@hookspec
def register_extractors(register: Register) -> None:
    """Attribute extractors: `extract(...) -> dict[str, AttributeValue]`."""


@hookspec
def register_generators(register: Register) -> None:
    """Generators: LangChain chat models that write the description."""
