"""Graph state: what a run takes in, carries between nodes, and gives back.

State holds references and small JSON values only (paths, hashes, text, scores), never pixels or
vectors, so checkpoints, the server and recorded runs stay cheap. Nested values are the plain-dict
form of the models in `schemas.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(kw_only=True)
class InputState:
    photos: list[str] = field(default_factory=list)
    """File paths, http(s) URLs or data URLs of the seller's photos."""
    hint: str = ""
    """Optional text the seller typed (e.g. "barely used, 256GB")."""
    lang: Literal["en", "zh"] = "en"


@dataclass(kw_only=True)
class OutputState:
    category: str | None = None
    category_confidence: float = 0.0
    attributes: dict[str, str] = field(default_factory=dict)
    evidence: dict[str, str] = field(default_factory=dict)
    """For each stated attribute, where its value comes from."""
    title: str = ""
    description: str = ""
    references: list[dict[str, Any]] = field(default_factory=list)
    """Catalog listings used as references: {id, similarity}."""
    degraded: str | None = None
    """None, or why the listing was built on a fallback path."""
    safety: dict[str, Any] | None = None
    price: dict | None = None
    """Suggested price range {low, high, currency, kind, basis: [catalog ids]}, or None without a basis."""
    quality: dict[str, Any] | None = None
    """The listing quality score: {score (0-100), features ({name: 0-1}), tips (what would raise it)}."""
    screened: list[str] = field(default_factory=list)
    """What outside text (hint, OCR, references, edits) or generated value was left out, and why."""


@dataclass(kw_only=True)
class State(InputState, OutputState):
    images: list[dict[str, Any]] = field(default_factory=list)
    """Resolved photos: `schemas.Photo` dicts (local path + sha256)."""
    ocr_text: list[str] = field(default_factory=list)
    category_path: list[str] = field(default_factory=list)
    neighbours: list[dict[str, Any]] = field(default_factory=list)
    """Visual-search hits (`schemas.Neighbour` dicts), best first."""
    trusted: list[dict[str, Any]] = field(default_factory=list)
    """Hits that passed the SPU-threshold gate: taken to be the identical product."""
    template: dict[str, Any] | None = None
    mode: str = "image_only"
    generator: str = ""
    moderation: dict[str, Any] | None = None
