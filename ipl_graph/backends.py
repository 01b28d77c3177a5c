"""Contracts: what a node may call on each kind of backend, as `typing.Protocol`s.

A plugin registers a factory of one of these kinds (`hookspecs.py`); `plugins.py` hands it back typed
as its protocol, so mypy checks every use a node makes of it and a third party knows what to implement.
Nothing here is state: requests carry vectors and calibrations, which never enter the graph's state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ipl_graph.schemas import AttributeValue, CategoryGuess, Neighbour, Photo


class Embedder(Protocol):
    def embed(self, photos: list[Photo]) -> np.ndarray:
        """(N, D) L2-normalised vectors, one per photo."""
        ...


class OCREngine(Protocol):
    name: str

    def read(self, photo: Photo, min_score: float) -> list[str]:
        """The text lines of a photo read with a confidence of `min_score` or more."""
        ...


class NudityDetector(Protocol):
    name: str

    def detect(self, photo: Photo, min_score: float, context_score: float) -> list[str]:
        """The exposed-class labels that make the photo unsafe ([] when none): parts seen at `min_score`
        or more beside another body part seen at `context_score` or more."""
        ...


class CatalogModel(Protocol):
    """What the catalog learned about how far its votes can be trusted (calibrations)."""

    @property
    def category_probe_weight(self) -> float: ...

    @property
    def colours(self) -> np.ndarray | None:
        """Colour histograms (M, 192) of catalog photos that state a Colour; None without."""
        ...

    @property
    def colour_names(self) -> list[str]: ...

    @property
    def words(self) -> dict[str, int]:
        """{word: catalog products whose title, attributes or category name it}; {} where unknown."""
        ...

    def category_confidence(self, category: str, share: float, score: float) -> tuple[float, float]:
        """(P(right) where the catalog has the seller's category, the stated P(right))."""
        ...

    def attribute_confidence(self, name: str, agreement: float, source: str = "similar") -> float: ...

    def states(self, category: str | None, name: str, value: str) -> bool:
        """Whether the catalog's rows of `category` ever state this value of the attribute (True for a
        category it has no rows of): a voted value they never state is not stated either."""
        ...


class Searcher(Protocol):
    """The catalog, as the nodes ask it: product hits, look-alikes, and what the catalog's learned
    model says of the photos. Results may be memoised per photo set; they never pass between nodes."""

    @property
    def calibration(self) -> CatalogModel | None:
        """The catalog's calibrations; None when it has none (votes are then taken at face value)."""
        ...

    def search(self, photos: list[Photo], k: int, text: Sequence[str] = ()) -> list[Neighbour]:
        """The k best products, best first; `text` is what OCR read on the photos."""
        ...

    def lookalikes(self, photos: list[Photo], k: int) -> list[Neighbour]:
        """The k listings that look most alike, best first."""
        ...

    def identity(self, neighbours: list[Neighbour]) -> float:
        """P(the top hit is the identical product)."""
        ...

    def category_prior(self, photos: list[Photo]) -> dict[str, float] | None:
        """{category: probability} to blend with the vote, or None when the catalog has none."""
        ...

    def distribution(self, name: str, photos: list[Photo]) -> dict[str, float]:
        """{value: probability} of an attribute over the photos; {} when the catalog cannot say."""
        ...

    def colour_histogram(self, photos: list[Photo]) -> np.ndarray | None:
        """The photos' colour histogram (192,) in the catalog's colour space, or None."""
        ...


Calibrate = Callable[[str, float, float], tuple[float, float]]
"""(category, vote share, top score) -> (P(right) where the catalog has the seller's category, the stated
P(right)): the first decides whether to offer the guess at all, the second is its confidence."""


@dataclass(frozen=True, kw_only=True)
class CategoryRequest:
    neighbours: list[Neighbour]
    """The product hits, best first."""
    min_confidence: float
    """Below this offered confidence the categorizer abstains."""
    calibrate: Calibrate | None = None
    prior: dict[str, float] | None = None
    """{category: probability} of the catalog's probe, blended with the vote when given."""
    prior_weight: float = 0.5
    """The prior's weight in the blend (the vote has the rest)."""
    photos: dict[str, int] | None = None
    """{category: catalog photos}: the vote is corrected for them (`votes.corrected`) when given."""


class Categorizer(Protocol):
    def categorize(self, request: CategoryRequest) -> CategoryGuess: ...


@dataclass(frozen=True, kw_only=True)
class ExtractionRequest:
    trusted: list[Neighbour]
    """Hits through the SPU gate: the identical product."""
    neighbours: list[Neighbour]
    """The product hits, best first."""
    ocr_lines: list[str]
    photos: list[Photo]
    wanted: list[str]
    """The template's attribute names."""
    lookalikes: list[Neighbour] = field(default_factory=list)
    model: CatalogModel | None = None
    histogram: np.ndarray | None = None
    """The photos' colour histogram (192,)."""
    min_confidence: float = 0.7
    min_agreement: float = 0.5
    """Share of the references' weight a value needs (`thresholds.reference_min_agreement`)."""
    min_colour_share: float = 0.45
    """Share of the photo a colour needs without a colour table (`thresholds.colour_min_share`)."""
    strict: dict[str, float] = field(default_factory=dict)
    """Per attribute, the confidence it needs at least (`thresholds.strict_attributes`)."""
    probes: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per attribute, the catalog probe's {value: probability}."""
    category: str | None = None
    """The listing's category: a value the votes give that the catalog never states for it is left out."""
    category_confidence: float = 1.0
    """The listing's stated category confidence. Below `min_category_confidence` the catalog's votes
    name no strict attribute: a photo the index cannot place (a T-shirt before a grocery catalog, whose
    hits all agree on its biggest brand) is no evidence of whose it is."""
    min_category_confidence: float = 0.0


class Extractor(Protocol):
    def extract(self, request: ExtractionRequest) -> dict[str, AttributeValue]: ...


GeneratorFactory = Callable[[str, str], Any]
"""(model, base_url) -> a LangChain chat model (`BaseChatModel`) that streams the description."""
