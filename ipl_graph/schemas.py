"""Pydantic models of what the tools produce. Everything here is JSON-serializable."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Photo(BaseModel):
    """A photo the graph works on: a local file and its content hash, never the pixels."""

    path: str
    sha256: str
    width: int
    height: int


class SafetyVerdict(BaseModel):
    safe: bool
    reason: str | None = None
    guidance: str | None = None
    checks: list[str] = Field(default_factory=list, description="names of the checks that ran")


class Neighbour(BaseModel):
    """A catalog listing near the query photos, with what the catalog knows of it."""

    id: str
    similarity: float
    category: str | None = None
    category_path: list[str] = Field(default_factory=list)
    title: str | None = None
    description: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    spu: str | None = None
    price: float | None = None
    currency: str | None = None
    text_match: float = Field(default=0.0, description="how well the text read on the seller's photos matches the"
                              " listing's title and attributes (IDF-weighted trigram cosine, 0 to 1)")

    @property
    def evidence(self) -> float:
        """What the hit weighs in the ranking and the votes: its photos' similarity moved towards 1 by
        its text match (a full match counts as a perfect photo). A pack's own words pick its product
        and category where the catalog has one or two photos to find it by; the searcher sorts by it
        in place (`ChromaSearcher._products`)."""
        return with_text(self.similarity, self.text_match)


def with_text(similarity: float, text_match: float) -> float:
    """`Neighbour.evidence` of a hit of this similarity and text match."""
    return similarity + text_match * (1.0 - similarity)


class CategoryGuess(BaseModel):
    name: str | None = Field(description="leaf category, None when the vote was not confident")
    confidence: float
    path: list[str] = Field(default_factory=list)
    runner_up: str | None = None


class AttributeValue(BaseModel):
    value: str
    source: str = Field(description="where the value comes from: reference:<id>, ocr, photo, hint")
    confidence: float = 1.0


class Template(BaseModel):
    category: str | None
    attributes: list[str] = Field(description="attribute names a listing must state, in order")
    generic: bool = False


class Draft(BaseModel):
    title: str
    description: str
    mode: str = Field(description="image_only, image_template or image_template_refs")
    generator: str


class Moderation(BaseModel):
    passed: bool
    violations: list[str] = Field(default_factory=list)
    cut_at: int | None = Field(default=None, description="character offset where the stream was stopped")


class Reference(BaseModel):
    id: str
    similarity: float
