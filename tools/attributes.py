"""extract_attributes: attribute values with their evidence, from trusted references, OCR and pixels.

A value is stated only with evidence: the identical product's catalog facts (references that passed
the gate, voted by similarity), a brand read off the packaging that the catalog knows, or the
colour of the photo's own pixels. No evidence, no value.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from langgraph.runtime import Runtime

from ipl_graph import plugins
from ipl_graph.context import Context
from ipl_graph.schemas import AttributeValue, Neighbour, Photo
from ipl_graph.state import State
from ipl_tools.colour import dominant_colour
from ipl_tools.photos import load_rgb

MIN_AGREEMENT = 0.5
MIN_COLOUR_SHARE = 0.45


class EvidenceExtractor:
    name = "evidence"

    def from_references(self, trusted: list[Neighbour]) -> dict[str, AttributeValue]:
        weights: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        first_ref: dict[tuple[str, str], str] = {}
        total = sum(n.similarity for n in trusted)
        for n in trusted:
            for name, value in n.attributes.items():
                if value:
                    weights[name][value] += n.similarity
                    first_ref.setdefault((name, value), n.id)
        found = {}
        for name, votes in weights.items():
            value, weight = max(votes.items(), key=lambda kv: kv[1])
            if total and weight / total >= MIN_AGREEMENT:
                found[name] = AttributeValue(
                    value=value, source=f"reference:{first_ref[(name, value)]}", confidence=round(weight / total, 3)
                )
        return found

    def brand_from_ocr(self, lines: list[str], neighbours: list[Neighbour]) -> AttributeValue | None:
        """A brand the catalog knows (among the neighbours) that the photo's text spells out."""
        text = " ".join(lines).casefold()
        brands = {n.attributes["Brand"] for n in neighbours if n.attributes.get("Brand")}
        for brand in sorted(brands, key=len, reverse=True):
            if len(brand) >= 3 and re.search(rf"(?<!\w){re.escape(brand.casefold())}(?!\w)", text):
                line = next((ln for ln in lines if brand.casefold() in ln.casefold()), brand)
                return AttributeValue(value=brand, source=f"ocr:{line}", confidence=0.9)
        return None

    def colour_from_photo(self, photos: list[Photo]) -> AttributeValue | None:
        name, share = dominant_colour(load_rgb(photos[0].path, photos[0].sha256))
        if name is None or share < MIN_COLOUR_SHARE:
            return None
        return AttributeValue(value=name, source="photo", confidence=round(share, 3))

    def extract(
        self, trusted: list[Neighbour], neighbours: list[Neighbour], ocr_lines: list[str],
        photos: list[Photo], wanted: list[str],
    ) -> dict[str, AttributeValue]:
        found = self.from_references(trusted)
        brand = self.brand_from_ocr(ocr_lines, [*trusted, *neighbours])
        if brand is not None:
            found["Brand"] = brand
        if "Colour" in wanted and "Colour" not in found:
            colour = self.colour_from_photo(photos)
            if colour is not None:
                found["Colour"] = colour
        return found


def extract_attributes(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    from ipl_graph.policies import load_policy

    ctx = runtime.context
    wanted, _ = load_policy(ctx.policy).templates.for_category(state.category)
    found = plugins.get("extractor", ctx.extractor).extract(
        [Neighbour.model_validate(n) for n in state.trusted],
        [Neighbour.model_validate(n) for n in state.neighbours],
        state.ocr_text,
        [Photo.model_validate(p) for p in state.images],
        wanted,
    )
    return {
        "attributes": {name: v.value for name, v in found.items()},
        "evidence": {name: v.source for name, v in found.items()},
    }
