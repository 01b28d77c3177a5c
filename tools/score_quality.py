"""score_quality: the listing quality score of the seed system, and what would raise it.

A weighted mean of a dozen features of the finished listing, each in [0, 1] (weights in the
policy's `quality:`, for the operator to set), shown as 0-100. Every feature that scores low earns
its tip for the seller ("add a photo of the label", "say the size"), the costliest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from langgraph.runtime import Runtime

from ipl_graph.context import Context
from ipl_graph.policies import Policy, load_policy
from ipl_graph.schemas import Photo
from ipl_graph.state import State
from ipl_tools.hint import read_hint
from ipl_tools.photos import load_rgb


@dataclass(frozen=True)
class QualityConfig:
    """Where each feature reaches 1; the reason beside each."""

    photos: int = 3
    """Front, back and label: the seed's listings with three photos or more sold best."""
    sharp_variance: float = 150.0
    """Variance of the Laplacian (0-255 grey) of a 256-px photo above which it reads as sharp."""
    exposure: tuple[float, float] = (60.0, 200.0)
    """Mean grey level of a well-exposed photo; darker or brighter falls off linearly to 0 or 255."""
    title_chars: int = 15
    """A title shorter than this says little more than the category."""
    description_chars: int = 120
    """Two or three sentences."""
    side: int = 256
    """Photos are measured at this size: sharpness depends on it, so it is fixed."""


CONFIG = QualityConfig()


def sharpness(photo: Photo, config: QualityConfig = CONFIG) -> float:
    grey = np.asarray(load_rgb(photo.path, photo.sha256, config.side).convert("L"), dtype=np.float32)  # (H, W)
    laplacian = grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1]
    return float(min(laplacian.var() / config.sharp_variance, 1.0)) if laplacian.size else 0.0


def exposure(photo: Photo, config: QualityConfig = CONFIG) -> float:
    level = float(np.asarray(load_rgb(photo.path, photo.sha256, config.side).convert("L")).mean())
    low, high = config.exposure
    if level < low:
        return level / low
    return 1.0 if level <= high else max((255.0 - level) / (255.0 - high), 0.0)


def features(state: State, policy: Policy, config: QualityConfig = CONFIG) -> dict[str, float]:
    """Each feature of the listing in [0, 1]."""
    photos = state.images
    wanted, _ = policy.templates.for_category(state.category)
    note = read_hint(state.hint, policy.writing)
    return {
        "photos": min(len(photos) / config.photos, 1.0),
        "sharpness": min((sharpness(p, config) for p in photos), default=0.0),
        "exposure": min((exposure(p, config) for p in photos), default=0.0),
        "title_length": min(len(state.title) / config.title_chars, 1.0),
        "template_attributes": sum(n in state.attributes for n in wanted) / len(wanted) if wanted else 1.0,
        "description_length": min(len(state.description) / config.description_chars, 1.0),
        "condition": 1.0 if note.get("condition") or note.get("used_for") else 0.0,
        "price": 1.0 if note.get("price") else 0.5 if state.price else 0.0,
        "category_confidence": float(state.category_confidence or 0.0) if state.category else 0.0,
        "references": 1.0 if state.trusted else 0.0,
        "brand": 1.0 if "Brand" in state.attributes or "Brand" not in wanted else 0.0,
        "safe_text": 0.0 if state.screened else 1.0,
    }


def score(found: dict[str, float], policy: Policy, lang: str, missing: list[str]) -> dict[str, Any]:
    """{score (0-100), features, tips}: the weighted mean, and the tips of the low features that cost
    the most (weight times shortfall)."""
    weights = {name: w for name, w in policy.quality.weights.items() if name in found and w > 0}
    total = sum(weights.values()) or 1.0
    value = 100.0 * sum(w * found[name] for name, w in weights.items()) / total
    low = sorted((n for n in weights if found[n] < policy.quality.tip_below),
                 key=lambda n: (-weights[n] * (1 - found[n]), n))
    tips = []
    for name in low[: policy.quality.max_tips]:
        text = policy.quality.tips.get(name, {})
        tip = text.get(lang) or text.get("en")
        if tip:
            tips.append(tip.format(missing=("、" if lang == "zh" else ", ").join(missing) or "-"))
    return {"score": round(value, 1), "features": {n: round(v, 3) for n, v in found.items()}, "tips": tips}


def score_quality(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    policy = load_policy(runtime.context.policy)
    wanted, _ = policy.templates.for_category(state.category)
    missing = [n.lower() if state.lang != "zh" else n for n in wanted if n not in state.attributes]
    return {"quality": score(features(state, policy), policy, state.lang, missing)}
