"""check_safety: read the photos, then screen them for nudity and prohibited goods.

Prohibited goods are a policy list matched against OCR text and the seller's hint (and, after
categorize, the category). The nudity detectors are in `nudity.py`, the OCR engines in `ocr.py`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from langgraph.runtime import Runtime

from ipl_graph import plugins
from ipl_graph.context import Context
from ipl_graph.errors import PhotoError
from ipl_graph.policies import Policy, SafetyPolicy, load_policy
from ipl_graph.schemas import SafetyVerdict
from ipl_graph.state import OutputState, State
from ipl_tools import trust
from ipl_tools.photos import resolve


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
    lines, dropped_lines = trust.screen_lines(ocr_lines, policy)
    return kept_hint, (lines, [f"hint: {r}" for r in dropped] + [f"photo text: {r}" for r in dropped_lines])
