"""Nudity detectors: NudeNet (an optional extra, AGPL-3.0: `pip install 'ipl[nudity]'`), or none.

Free of the graph's modules (as `ocr.py` is), so a worker loads the detector beside its imports.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from ipl_graph.schemas import Photo

EXPOSED = {
    "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "ANUS_EXPOSED", "BUTTOCKS_EXPOSED",
}


def exposed_parts(found: list[dict[str, Any]], min_score: float, context_score: float) -> list[str]:
    """The exposed classes of NudeNet detections ({class, score[, box]}) that make a photo unsafe: seen
    at `min_score` or more, and only beside another body part seen at `context_score` or more (a
    face, a belly, armpits, feet...): alone, NudeNet takes round fruit for breasts (13 of the 296
    grocery shop photos, none with a second part)."""
    parts = {d["class"].removesuffix("_EXPOSED").removesuffix("_COVERED") for d in found if d["score"] >= context_score}
    if len(parts) < 2:
        return []
    male_chest = [d for d in found if d["class"] == "MALE_BREAST_EXPOSED" and d["score"] >= min_score]
    return sorted({
        d["class"] for d in found
        if d["class"] in EXPOSED and d["score"] >= min_score
        and not (d["class"] == "FEMALE_BREAST_EXPOSED" and any(same_chest(d, m) for m in male_chest))
    })


def same_chest(breast: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two breast detections are the pair of one chest: side by side, level, no more than a
    breast's width apart. NudeNet has no class for a man in briefs seen without his face, and reads
    one side of his chest as female, the other as male (17 of the 21 men's underwear photos in the
    fashion catalog); a chest it reads as both is a man's."""
    if "box" not in breast or "box" not in other:
        return False
    (x1, y1, w1, h1), (x2, y2, w2, h2) = breast["box"], other["box"]
    level = min(y1 + h1, y2 + h2) > max(y1, y2)
    gap = max(x1, x2) - min(x1 + w1, x2 + w2)
    return level and gap <= max(w1, w2)


class NudeNetDetector:
    """`detect(photo, min_score, context_score) -> list[str]`: the exposed classes that make the
    photo unsafe (`exposed_parts`); what NudeNet found is cached per photo hash."""

    name = "nudenet"

    def __init__(self) -> None:
        from nudenet import NudeDetector

        self._detector = NudeDetector()
        self._lock = threading.Lock()
        self._cached = lru_cache(maxsize=1024)(self._detect)

    def detect(self, photo: Photo, min_score: float, context_score: float) -> list[str]:
        return exposed_parts(list(self._cached(photo.path, photo.sha256)), min_score, context_score)

    def _detect(self, path: str, sha256: str) -> tuple[dict[str, Any], ...]:
        with self._lock:
            return tuple(self._detector.detect(path))


class NoNudityCheck:
    name = "none"

    def detect(self, photo: Photo, min_score: float = 0.0, context_score: float = 0.0) -> list[str]:
        return []


def auto_detector() -> Any:
    """NudeNet when the optional extra is installed, otherwise no nudity check (said in the verdict)."""
    try:
        return NudeNetDetector()
    except ImportError:
        return NoNudityCheck()
