"""Load and validate policy files from the wheel's `ipl_policies` package or a path."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from ipl_graph.errors import UserError


class Thresholds(BaseModel):
    category_min_confidence: float = Field(ge=0, le=1)
    spu_gate: float = Field(ge=-1, le=1)
    max_references: int = Field(ge=0)
    attribute_min_confidence: float = Field(default=0.85, ge=0, le=1)
    name_category_min_confidence: float = Field(default=0.0, ge=0, le=1)
    reference_min_agreement: float = Field(
        default=0.5, ge=0, le=1, description="share of the trusted references' weight a value needs to be taken")
    colour_min_share: float = Field(
        default=0.45, ge=0, le=1, description="share of the photo a colour needs, where the index has no colour table")
    ocr_min_score: float = Field(default=0.6, ge=0, le=1, description="OCR confidence a text line needs to be read")
    nudity_min_score: float = Field(
        default=0.5, ge=0, le=1, description="detector score an exposed part needs to make a photo unsafe")
    nudity_context_score: float = Field(
        default=0.4, ge=0, le=1, description="score of the second body part an exposed part needs beside it")
    strict_attributes: dict[str, float] = Field(
        default_factory=lambda: {"Brand": 0.9, "Model": 0.9},
        description="calibrated confidence a look-alike vote needs for these, at least: a wrong brand misrepresents")


class Limits(BaseModel):
    max_photos: int = Field(gt=0)
    max_photo_bytes: int = Field(gt=0)
    max_photo_pixels: int = Field(gt=0)
    max_title_chars: int = Field(gt=0)
    max_description_chars: int = Field(gt=0)
    max_hint_chars: int = Field(default=2000, gt=0, description="longest seller hint taken (CLI, API, page)")
    min_photo_side: int = Field(default=32, gt=0, description="a shorter side below this shows no product")
    photo_store_bytes: int = Field(
        default=2_000_000_000, gt=0, description="bound on the server's photo store; oldest photos go first"
    )


class SafetyPolicy(BaseModel):
    guidance: str
    prohibited_keywords: list[str] = Field(default_factory=list)
    prohibited_categories: list[str] = Field(default_factory=list)


class ModerationPolicy(BaseModel):
    banned_terms: list[str] = Field(default_factory=list)
    contact_patterns: bool = True
    min_phone_digits: int = Field(default=7, ge=5, description="digits in a run that make a phone number")
    messengers: list[str] = Field(default_factory=list, description="messenger names: naming one is a contact detail")
    link_tlds: list[str] = Field(default_factory=list, description="top-level domains of bare domains")
    lures: list[str] = Field(default_factory=list, description="off-platform lures (regex; a space: any separators)")
    injections: list[str] = Field(default_factory=list, description="instructions to the model (regex, as lures)")
    authenticity: list[str] = Field(default_factory=list, description="claims of authenticity (regex, as lures)")
    number_words: dict[str, str] = Field(default_factory=dict, description="number words read as digits")
    boilerplate: list[str] = Field(default_factory=list)
    grounding: bool = Field(default=True, description="flag a brand, model, size, capacity or colour with no evidence")
    known_brands: list[str] = Field(
        default_factory=list, description="brands to look for besides those the catalog neighbours carry"
    )
    colours: dict[str, list[str]] = Field(
        default_factory=dict, description="colour name (as the Colour attribute spells it) -> words for it, en and zh"
    )


class Disclosure(BaseModel):
    enabled: bool = False
    text: dict[str, str] = Field(default_factory=dict)


class GenerationPolicy(BaseModel):
    """Limits passed to model-backed generators on every call, and the categories no text names."""

    max_new_tokens: int = Field(default=256, gt=0)
    temperature: float = Field(default=0.7, ge=0)
    top_p: float = Field(default=0.9, gt=0, le=1)
    image_max_side: int = Field(default=768, gt=0, description="photos are scaled down to this many pixels a side")
    unnamed_categories: list[str] = Field(
        default_factory=list, description="catalog sections that are no name for the thing sold ('Packages')"
    )


class Templates(BaseModel):
    """Per-category attribute templates, as mined by `ipl mine-templates` and edited by hand."""

    generic: list[str] = Field(default_factory=list)
    categories: dict[str, list[str]] = Field(default_factory=dict)
    titles: dict[str, list[str]] = Field(
        default_factory=dict, description="per category (and '*'), the order its catalog titles state attributes in;"
                                          " '{category}' is the name of the thing")
    voice: dict[str, dict[str, list[str]]] = Field(
        default_factory=dict, description="per language: openings, conditions, closings mined from real listings")

    def for_category(self, category: str | None) -> tuple[list[str], bool]:
        """The category's attributes in order, and whether the generic template stood in."""
        if category is not None:
            for name, attrs in self.categories.items():
                if name.casefold() == category.casefold():
                    return attrs, False
        return self.generic, True

    def title_order(self, category: str | None) -> list[str]:
        """How the catalog's own titles of this category are built: attribute names and '{category}'."""
        by_name = {name.casefold(): order for name, order in self.titles.items()}
        return by_name.get((category or "").casefold()) or self.titles.get("*") or ["Brand", "Colour", "{category}"]


class WritingPolicy(BaseModel):
    """How the default writer plans a description: the parts of a seller's hint, what kind of thing a
    category path names, and the order of sentences for each kind."""

    hint_parts: dict[str, list[str]] = Field(
        default_factory=dict, description="part of a hint -> cue patterns (regex, case folded; a space: separators)")
    kinds: dict[str, list[str]] = Field(default_factory=dict, description="kind -> category path words naming it")
    plans: dict[str, list[str]] = Field(default_factory=dict, description="kind -> sentences in order ('default')")
    shared_word_min: float = Field(
        default=0.6, ge=0, le=1, description="share of the top catalog hits a word needs to name an unsure item")


class QualityPolicy(BaseModel):
    """The listing quality score: a weighted mean of features in [0, 1], shown as 0-100, and the tip
    each feature gives a seller when it scores low."""

    weights: dict[str, float] = Field(default_factory=dict, description="feature -> weight (0 switches it off)")
    tips: dict[str, dict[str, str]] = Field(default_factory=dict, description="feature -> {lang: tip}")
    tip_below: float = Field(default=0.6, ge=0, le=1, description="a feature below this earns its tip")
    max_tips: int = Field(default=3, ge=0)


class Policy(BaseModel):
    thresholds: Thresholds
    limits: Limits
    safety: SafetyPolicy
    moderation: ModerationPolicy
    disclosure: Disclosure = Field(default_factory=Disclosure)
    generation: GenerationPolicy = Field(default_factory=GenerationPolicy)
    writing: WritingPolicy = Field(default_factory=WritingPolicy)
    quality: QualityPolicy = Field(default_factory=lambda: QualityPolicy())
    templates: Templates


def _read_yaml(name_or_path: str) -> tuple[dict, Path | None]:
    """The YAML mapping of a policy file (a path, or a name in policies/) and the folder it is in."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} and path.exists():
        return _parse(name_or_path, lambda: path.read_text(encoding="utf-8")), path.parent
    resource = resources.files("ipl_policies").joinpath(f"{name_or_path}.yaml")
    if not resource.is_file():
        resource = resources.files("ipl_policies").joinpath(name_or_path)
    if not resource.is_file():
        raise UserError(f"policy {name_or_path!r} not found (a name in policies/ or a .yaml path)")
    return _parse(name_or_path, lambda: resource.read_text(encoding="utf-8")), None


SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""PyYAML's safe loader in C where it was built with libyaml: the two policy files load in 4 ms, not
45 ms, on every cold start."""


def _parse(name_or_path: str, read: Callable[[], str]) -> dict:
    """The mapping a policy file holds; a file that cannot be read or holds no mapping is a UserError."""
    try:
        raw = yaml.load(read(), Loader=SAFE_LOADER) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"policy {name_or_path!r} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise UserError(f"policy {name_or_path!r} is not valid YAML{at}: fix it or pass another --policy") from None
    if not isinstance(raw, dict):
        raise UserError(
            f"policy {name_or_path!r} is not a policy file (a YAML mapping of thresholds, limits, safety, moderation"
            " and templates, as in policies/default.yaml)"
        )
    return raw


def load_policy(name_or_path: str = "default") -> Policy:
    """The validated policy; `templates:` may name a second YAML file beside it. A policy file
    edited on disk is read again."""
    path = Path(name_or_path)
    return _load_policy(name_or_path, path.stat().st_mtime_ns if path.is_file() else 0)


@lru_cache(maxsize=16)
def _load_policy(name_or_path: str, mtime_ns: int) -> Policy:
    raw, folder = _read_yaml(name_or_path)
    templates = raw.get("templates", {})
    if isinstance(templates, str):
        templates, _ = _read_yaml(str(folder / templates) if folder else templates)
    try:
        return Policy.model_validate({**raw, "templates": templates})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UserError(f"policy {name_or_path!r} is invalid at {where}: {first['msg']}") from None
