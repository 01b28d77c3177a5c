"""The grounding check: claims in generated text (brand, model code, capacity, size, colour) that
the evidence does not carry. Evidence is the listing's attributes and their sources, the trusted
references' facts and the seller's own note."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ipl_graph.policies import Policy
from ipl_graph.state import State

# Claims the grounding check looks for. Lookarounds name ASCII explicitly: `\w` matches CJK too.
CAPACITY = re.compile(
    r"(?<![A-Za-z0-9.,])(\d+(?:[.,]\d+)?)\s?(tb|gb|mb|mah|ml|cl|l|kg|g|w|mm|cm|inch(?:es)?|英寸|毫升|升|千克|公斤|克)"
    r"(?![A-Za-z])",
    re.I,
)
UNITS = {
    "tb": ("B", 1e12), "gb": ("B", 1e9), "mb": ("B", 1e6), "mah": ("mAh", 1.0), "ml": ("L", 1e-3),
    "毫升": ("L", 1e-3), "cl": ("L", 1e-2), "l": ("L", 1.0), "升": ("L", 1.0), "kg": ("g", 1e3), "千克": ("g", 1e3),
    "公斤": ("g", 1e3), "g": ("g", 1.0), "克": ("g", 1.0), "w": ("W", 1.0), "mm": ("m", 1e-3), "cm": ("m", 1e-2),
    "inch": ("m", 0.0254), "inches": ("m", 0.0254), "英寸": ("m", 0.0254),
}
SIZE = re.compile(
    r"(?<![A-Za-z0-9-])(XXS|XS|XXL|XXXL|[2-6]XL|XL)(?![A-Za-z0-9-])"
    r"|(?:(?<![A-Za-z])size|尺码|码数)\s*[:：]?\s*([2-6]?X{0,3}[SMLsml]|\d{1,2}(?:\.5)?)(?![A-Za-z0-9])"
    r"|(?<![0-9.])(\d{2}(?:\.5)?)\s?码"
)
MODEL_CODE = re.compile(
    r"(?<![A-Za-z0-9-])(?=[A-Za-z0-9-]*[A-Za-z])(?=[A-Za-z0-9-]*\d)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*(?![A-Za-z0-9-])"
)
NOT_A_MODEL = re.compile(r"\d+(?:st|nd|rd|th|s|x|pcs?)|x\d+", re.I)


@dataclass(frozen=True)
class Grounding:
    """What the text may claim: the evidence as one case-folded text, and the words to look for."""

    evidence: str
    brands: tuple[str, ...] = ()
    colour: str | None = None
    colours: tuple[tuple[str, tuple[str, ...]], ...] = ()
    references: str = ""
    """What the trusted references say themselves: the only evidence for a claim of authenticity."""
    known: tuple[tuple[str, float], ...] = ()
    """The quantities the evidence states, read once (not once per claim: that was quadratic)."""

    @classmethod
    def of(cls, state: State, policy: Policy) -> Grounding:
        """Evidenced attributes and their sources, the trusted references' facts, the seller's note."""
        parts = [*state.attributes.values(), *state.evidence.values(), state.hint, state.category or "",
                 *state.category_path]
        refs = []
        for ref in state.trusted:
            refs += [ref.title or "", ref.description or "", *ref.attributes.values()]
        evidence = "\n".join([*parts, *refs]).casefold()
        brands = set(policy.moderation.known_brands)
        brands.update(b for n in [*state.neighbours, *state.trusted] if (b := n.attributes.get("Brand")))
        return cls(
            evidence=evidence,
            brands=tuple(sorted(brands, key=len, reverse=True)),
            colour=state.attributes.get("Colour"),
            colours=tuple((name, tuple(words)) for name, words in policy.moderation.colours.items()),
            references="\n".join(refs),
            known=tuple(q for m in CAPACITY.finditer(evidence) if (q := _quantity(m))),
        )

    def has(self, word: str) -> bool:
        return _has_word(self.evidence, word.casefold())


def _has_word(text: str, word: str) -> bool:
    """`word` in `text` as a whole word (Latin script) or as a substring (CJK)."""
    if not word.isascii():
        return word in text
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", text) is not None


def _quantity(match: re.Match[str]) -> tuple[str, float] | None:
    unit = UNITS.get(match.group(2).casefold())
    return (unit[0], float(match.group(1).replace(",", ".")) * unit[1]) if unit else None


def _brand_claim(sentence: str, g: Grounding) -> str | None:
    for brand in g.brands:
        found = brand in sentence if not brand.isascii() else any(
            _has_word(sentence, spelling) for spelling in {brand, brand.upper()}
        )
        if found and not g.has(brand):
            return f"ungrounded brand: {brand!r}"
    return None


def _capacity_claim(sentence: str, g: Grounding) -> str | None:
    for m in CAPACITY.finditer(sentence):
        q = _quantity(m)
        if q and not any(d == q[0] and math.isclose(v, q[1], rel_tol=0.02) for d, v in g.known):
            return f"ungrounded capacity: {m.group(0).strip()!r}"
    return None


def _size_claim(sentence: str, g: Grounding) -> str | None:
    for m in SIZE.finditer(sentence):
        size = next(s for s in m.groups() if s)
        if not g.has(size):
            return f"ungrounded size: {size!r}"
    return None


def _model_claim(sentence: str, g: Grounding) -> str | None:
    for m in MODEL_CODE.finditer(sentence):
        code = m.group(0)
        if len(code) < 3 or NOT_A_MODEL.fullmatch(code) or CAPACITY.fullmatch(code) or SIZE.fullmatch(code):
            continue
        if not g.has(code):
            return f"ungrounded model: {code!r}"
    return None


def _colour_claim(sentence: str, g: Grounding) -> str | None:
    lowered = sentence.casefold()
    for name, words in g.colours:
        word = next((w for w in words if _has_word(lowered, w.casefold())), None)
        if word and not any(g.has(w) for w in (name, *words)):
            return f"ungrounded colour: {word!r} (evidence: {g.colour or 'none'})"
    return None


def ungrounded_claim(sentence: str, g: Grounding) -> str | None:
    """The first claim in `sentence` that the evidence does not carry, or None."""
    for claim in (_brand_claim, _model_claim, _capacity_claim, _size_claim, _colour_claim):
        reason = claim(sentence, g)
        if reason:
            return reason
    return None
