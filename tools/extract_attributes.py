"""extract_attributes: attribute values with their evidence; no evidence, no value.

In order of trust:
1. the identical product's catalog facts (references that passed the SPU gate, voted by similarity);
2. text read off the packaging: a brand or model the nearby catalog listings name, a capacity;
3. the photo's own pixels for the colour, named by the catalog photos of nearest colour histogram;
4. for the template's other attributes (and the colour, where it trusts it more than the namer),
   the similarity-weighted vote of the catalog's look-alikes (raw embedding), of the product hits
   (learned space), or the index's linear probe for that attribute (`probe.py`), whichever the
   index's calibration on held-out catalog photos trusts most, stated only when it says a value
   this well supported is right often enough (`attribute_min_confidence`; brand and model, which
   misrepresent an item when wrong, need more, and a category the listing states with at least
   `category_min_confidence`: hits that agree on a brand say nothing of a photo the index cannot place).

Also writes the price suggestion (`price.py`), which rests on the same references.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

import numpy as np
from langgraph.runtime import Runtime

from ipl_graph import plugins
from ipl_graph.backends import CatalogModel, ExtractionRequest
from ipl_graph.context import Context
from ipl_graph.policies import load_policy
from ipl_graph.schemas import AttributeValue, Neighbour, Photo
from ipl_graph.state import State
from ipl_tools.catalog.colour import dominant_colour, name_colour
from ipl_tools.catalog.config import LEARN
from ipl_tools.catalog.text import fold
from ipl_tools.catalog.votes import vote
from ipl_tools.photos import load_rgb
from ipl_tools.price import suggest_price
from ipl_tools.search_similar import searcher_for

READ = ("Brand", "Model")
"""Attributes whose catalog values are read off the packaging when the photo's text spells them."""
CAPACITY = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?)\s?(ml|cl|dl|l|kg|g|gb|tb|mah)(?!\w)", re.I)


class EvidenceExtractor:
    name = "evidence"

    def from_references(self, trusted: list[Neighbour], min_agreement: float) -> dict[str, AttributeValue]:
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
            if total and weight / total >= min_agreement:
                found[name] = AttributeValue(
                    value=value, source=f"reference:{first_ref[(name, value)]}", confidence=round(weight / total, 3)
                )
        return found

    def read_from_text(
        self, lines: list[str], neighbours: list[Neighbour], name: str = "Brand"
    ) -> AttributeValue | None:
        """A value of `name` that the nearby catalog listings state and the photo's text spells out."""
        text = fold(" ".join(lines))
        values = {n.attributes[name] for n in neighbours if n.attributes.get(name)}
        for value in sorted(values, key=len, reverse=True):
            if len(value) >= 3 and re.search(rf"(?<!\w){re.escape(fold(value))}(?!\w)", text):
                line = next((ln for ln in lines if fold(value) in fold(ln)), value)
                return AttributeValue(value=value, source=f"ocr:{line}", confidence=0.9)
        return None

    def brand_from_ocr(self, lines: list[str], neighbours: list[Neighbour]) -> AttributeValue | None:
        return self.read_from_text(lines, neighbours, "Brand")

    def capacity_from_ocr(self, lines: list[str]) -> AttributeValue | None:
        for line in lines:
            m = CAPACITY.search(line)
            if m and float(m.group(1).replace(",", ".")) > 0:
                return AttributeValue(value=f"{m.group(1)} {m.group(2).lower()}", source=f"ocr:{line}", confidence=0.8)
        return None

    def colour_from_photo(self, photos: list[Photo], histogram: np.ndarray | None = None,
                          model: CatalogModel | None = None, min_confidence: float = 0.0,
                          min_share: float = 0.45) -> AttributeValue | None:
        if model is not None and model.colours is not None and histogram is not None:
            name, share = name_colour(histogram, model.colours, model.colour_names)
            confidence = model.attribute_confidence("Colour", share)
            if name is None or confidence < min_confidence:
                return None
            return AttributeValue(value=name, source="photo", confidence=round(confidence, 3))
        name, share = dominant_colour(load_rgb(photos[0].path, photos[0].sha256))
        if name is None or share < min_share:
            return None
        return AttributeValue(value=name, source="photo", confidence=round(share, 3))

    def from_votes(self, sources: dict[str, list[Neighbour]], names: list[str], model: CatalogModel,
                   min_confidence: float, probes: dict[str, dict[str, float]] | None = None,
                   strict: dict[str, float] | None = None, category: str | None = None) -> dict[str, AttributeValue]:
        """Per attribute, the value the look-alikes ('similar') or the product hits ('products') vote
        for, or the probe's most probable value ({name: {value: probability}} in `probes`),
        whichever the index's calibration trusts most, if it trusts it enough. A value the catalog's
        rows of the listing's `category` never state is no candidate (`CatalogModel.states`): in a
        long-tailed catalog the votes and the probe lean to the head brand, and put a milk brand on an
        oat yoghurt or a juice brand on a yoghurt the catalog only knows by other brands."""
        found = {}
        probes = probes or {}
        for name in names:
            best: tuple[float, str, str] | None = None
            for source, hits in sources.items():
                value, agreement, _ = vote([(n.similarity, n.attributes.get(name)) for n in hits])
                confidence = model.attribute_confidence(name, agreement, source)
                if value is not None and model.states(category, name, value) and (best is None or confidence > best[0]):
                    best = (confidence, value, source)
            if probes.get(name):
                value, p = max(probes[name].items(), key=lambda kv: kv[1])
                confidence = model.attribute_confidence(name, p, "probe")
                if model.states(category, name, value) and (best is None or confidence > best[0]):
                    best = (confidence, value, "probe")
            if best is None or best[0] < max(min_confidence, (strict or {}).get(name, 0.0)):
                continue
            confidence, value, source = best
            if source == "probe":
                evidence = f"probe:p={probes[name][value]:.2f}"
            else:
                agreeing = [n.id for n in sources[source] if n.attributes.get(name) == value][:3]
                evidence = f"{source}:" + ",".join(agreeing)
            found[name] = AttributeValue(value=value, source=evidence, confidence=round(confidence, 3))
        return found

    def extract(self, request: ExtractionRequest) -> dict[str, AttributeValue]:
        r = request
        found = self.from_references(r.trusted, r.min_agreement)
        nearby = [*r.trusted, *r.neighbours, *r.lookalikes]
        for name in READ:
            read = self.read_from_text(r.ocr_lines, nearby, name)
            if read is not None:
                found[name] = read
        capacity = self.capacity_from_ocr(r.ocr_lines)
        if capacity is not None and "Capacity" not in found:
            found["Capacity"] = capacity
        model = r.model
        if "Colour" in r.wanted and "Colour" not in found:
            colour = self.colour_from_photo(r.photos, r.histogram, model, r.min_confidence, r.min_colour_share)
            probed = (self.from_votes({}, ["Colour"], model, r.min_confidence, r.probes, r.strict, r.category)
                      .get("Colour") if model else None)
            if probed is not None and (colour is None or probed.confidence > colour.confidence):
                colour = probed
            if colour is not None:
                found["Colour"] = colour
        if model is not None:
            placed = r.category_confidence >= r.min_category_confidence
            rest = [n for n in r.wanted if n not in found and n != "Colour" and (placed or n not in r.strict)]
            sources = {"similar": r.lookalikes, "products": r.neighbours[: LEARN.vote_k]}
            found |= self.from_votes(sources, rest, model, r.min_confidence, r.probes, r.strict, r.category)
        return found


def extract_attributes(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = runtime.context
    policy = load_policy(ctx.policy)
    wanted, _ = policy.templates.for_category(state.category)
    searcher = searcher_for(runtime)
    photos = state.images
    histogram = searcher.colour_histogram(photos)
    lookalikes = searcher.lookalikes(photos, LEARN.lookalike_k)
    found = plugins.extractor(ctx.extractor).extract(ExtractionRequest(
        trusted=state.trusted, neighbours=state.neighbours, ocr_lines=state.ocr_text, photos=photos,
        wanted=wanted, lookalikes=lookalikes, model=searcher.calibration, histogram=histogram,
        min_confidence=policy.thresholds.attribute_min_confidence,
        min_agreement=policy.thresholds.reference_min_agreement, min_colour_share=policy.thresholds.colour_min_share,
        strict=policy.thresholds.strict_attributes,
        probes={name: searcher.distribution(name, photos) for name in wanted},
        category=state.category, category_confidence=state.category_confidence if state.category else 0.0,
        min_category_confidence=policy.thresholds.category_min_confidence,
    ))
    return {
        "attributes": {name: v.value for name, v in found.items()},
        "evidence": {name: v.source for name, v in found.items()},
        "price": suggest_price(state.trusted, lookalikes, state.category),
    }
