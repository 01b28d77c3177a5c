"""The trust boundary: every text from outside (catalog rows, reference values, OCR, the seller's hint
and edits) is cleaned and checked here before it can reach a listing, the tuning data or the index.

`clean` normalises a text (NFKC, control/zero-width/bidi/ANSI stripped); `problem` says why a text
may not be published (contact details and their evasions, off-platform lures, instructions to the
model, prohibited goods, banned terms), or None; `row_problem` applies it to a catalog row.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from ipl_graph.policies import Policy

ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")


def clean(text: str) -> str:
    """`text` as a listing may hold it: ANSI escapes, control, zero-width and bidi characters removed,
    NFKC-normalised (full-width letters and digits folded)."""
    text = ANSI.sub("", text)
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) not in {"Cc", "Cf", "Cs", "Co"})


def problem(text: str, policy: Policy) -> str | None:
    """Why `text` may not be published anywhere in a listing, or None."""
    from ipl_tools.moderation import check_sentence  # placeholder until the rules move here

    return check_sentence(clean(text), policy)


def row_problem(row: dict[str, Any], policy: Policy) -> str | None:
    """Why a catalog row may not be used as a reference (quarantined at index time), or None."""
    texts = [row.get("title") or "", row.get("description") or ""]
    attributes = row.get("attributes") or {}
    if isinstance(attributes, dict):
        texts += [f"{k}: {v}" for k, v in attributes.items()]
    for field_text in texts:
        if isinstance(field_text, str) and (reason := problem(field_text, policy)):
            return reason
    return None
