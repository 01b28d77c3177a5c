"""check_safety: read the photos, then screen them for nudity and prohibited goods.

Prohibited goods are a policy list matched against OCR text and the seller's hint (and, after
categorize, the category). NudeNet is an optional extra (AGPL-3.0): `pip install 'ipl[nudity]'`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from langgraph.runtime import Runtime

from ipl_graph import plugins
from ipl_graph.context import Context
from ipl_graph.errors import PhotoError
from ipl_graph.policies import Policy, SafetyPolicy, load_policy
from ipl_graph.schemas import Photo, SafetyVerdict
from ipl_graph.state import OutputState, State
from ipl_tools import trust
from ipl_tools.photos import resolve

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
    name = "nudenet"

    def __init__(self) -> None:
        from nudenet import NudeDetector

        self._detector = NudeDetector()

    def detect(self, photo: Photo, min_score: float, context_score: float) -> list[str]:
        return exposed_parts(self._detector.detect(photo.path), min_score, context_score)


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


def find_prohibited(texts: list[str], policy: Policy) -> str | None:
    """The first prohibited keyword in `texts` (whole words for Latin script, substrings for CJK),
    read through the trust boundary's views, so spaced, full-width or look-alike spellings count."""
    return trust.prohibited(texts, policy)


def unsafe(reason: str, policy: SafetyPolicy, checks: list[str]) -> dict[str, Any]:
    verdict = SafetyVerdict(safe=False, reason=reason, guidance=policy.guidance, checks=checks)
    return {"safety": verdict, "degraded": "unsafe", "description": policy.guidance}


def check_safety(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = runtime.context
    policy = load_policy(ctx.policy)
    if not state.photos:
        raise PhotoError("no photos given")
    if len(state.photos) > policy.limits.max_photos:
        raise PhotoError(f"{len(state.photos)} photos is over the limit of {policy.limits.max_photos}")
    photos = [resolve(ref, policy.limits) for ref in state.photos]
    ocr = plugins.ocr(ctx.ocr)
    lines = [trust.clean(line) for photo in photos for line in ocr.read(photo, policy.thresholds.ocr_min_score)]
    nudity = plugins.nudity(ctx.nudity)
    checks = [f"nudity:{nudity.name}", f"ocr:{ocr.name}", "prohibited-keywords", "outside-text"]
    # Every output key is written once here, so a listing always has all of them, even unsafe ones.
    blank = {f.name: getattr(OutputState(), f.name) for f in dataclasses.fields(OutputState)}
    hint, screened = screen_outside_text(state.hint, lines, policy)
    update: dict[str, Any] = blank | {"images": photos, "ocr_text": screened[0],
                                      "hint": hint, "screened": screened[1]}
    for photo in photos:
        labels = nudity.detect(photo, policy.thresholds.nudity_min_score, policy.thresholds.nudity_context_score)
        if labels:
            return update | unsafe(f"nudity ({', '.join(labels)})", policy.safety, checks)
    keyword = find_prohibited([*lines, state.hint[: policy.limits.max_hint_chars]], policy)
    if keyword:
        return update | unsafe(f"prohibited item: {keyword!r}", policy.safety, checks)
    return update | {"safety": SafetyVerdict(safe=True, checks=checks)}


def screen_outside_text(hint: str, ocr_lines: list[str], policy: Policy) -> tuple[str, tuple[list[str], list[str]]]:
    """The seller's hint and the OCR lines as the rest of the graph may use them: cleaned, the hint cut
    to the policy's length, every part with contact details, a lure, an instruction to the model or a
    claim of authenticity left out. Returns (hint, (OCR lines, what was left out and why))."""
    kept_hint, dropped = trust.screen(hint, policy, policy.limits.max_hint_chars)
    reasons = [f"hint: {r}" for r in dropped]
    lines = []
    for line in ocr_lines:
        reason = trust.problem(line, policy)
        if reason:
            reasons.append(f"photo text: {reason}")
        else:
            lines.append(line)
    return kept_hint, (lines, reasons)
