"""Graph state: what a run takes in, carries between nodes, and gives back.

State holds references and small JSON values only (paths, hashes, text, scores), never pixels or
vectors, so checkpoints, the server and recorded runs stay cheap. Nested values are the models of
`schemas.py` (LangGraph serialises them); `plain` gives their JSON form for a CLI or a file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from ipl_graph.schemas import Moderation, Neighbour, Photo, SafetyVerdict, Template


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
    safety: SafetyVerdict | None = None
    price: dict | None = None
    """Suggested price range {low, high, currency, kind, basis: [catalog ids]}, or None without a basis."""
    quality: dict[str, Any] | None = None
    """The listing quality score: {score (0-100), features ({name: 0-1}), tips (what would raise it)}."""
    screened: list[str] = field(default_factory=list)
    """What outside text (hint, OCR, references, edits) or generated value was left out, and why."""


@dataclass(kw_only=True)
class State(InputState, OutputState):
    images: list[Photo] = field(default_factory=list)
    """Resolved photos (local path + sha256)."""
    ocr_text: list[str] = field(default_factory=list)
    category_path: list[str] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    """Visual-search hits, best first."""
    trusted: list[Neighbour] = field(default_factory=list)
    """Hits that passed the SPU-threshold gate: taken to be the identical product."""
    template: Template | None = None
    mode: str = "image_only"
    generator: str = ""
    moderation: Moderation | None = None


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """State values (or an update) in JSON form: models as their dumps."""
    return to_jsonable_python(values)  # type: ignore[no-any-return]


_STATE = TypeAdapter(State)


def updated(state: State, update: dict[str, Any]) -> State:
    """The state after a partial update, values in JSON form (a recorded update, a test's) validated
    into their models, as the graph would have them."""
    merged = {f.name: getattr(state, f.name) for f in dataclasses.fields(State)} | update
    return _STATE.validate_python(merged)
