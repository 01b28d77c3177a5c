"""The cleaning rules of instruction data, after the seed system's: each is a small named function
that says why a listing row is dropped (or None), and `Cleaner` counts what each one drops.

The risk rule is the moderation's own (`ipl_tools.trust.row_problem`: contact details and their
evasions, off-platform lures, instructions to the model, prohibited goods, banned terms), so a row
the index would quarantine never becomes a training target either. Privacy adds what a listing
must not teach a model to write beyond contact details: a person's name, an ID-card or bank-card
number, a street address. The photo-text consistency rule needs the catalog model (`catalog.py`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ipl_graph.policies import Policy
from ipl_tools import trust


@dataclass(frozen=True)
class CleaningConfig:
    """Bounds of the heuristics; each with the reason for its value."""

    min_title_chars: int = 2
    """A title of one character names nothing ('A')."""
    min_description_chars: int = 20
    """Shorter than a sentence: no register to learn (Chinese needs fewer characters: half)."""
    max_description_chars: int = 3000
    """Longer than any description the writer is asked for (max_new_tokens 256) by far: a pasted manual."""
    max_title_chars: int = 200
    max_special_share: float = 0.3
    """Share of a text's non-blank characters that are neither letters, digits nor CJK: ASCII art, tables."""
    max_same_word_share: float = 0.5
    """Share of the words that one word may take: keyword stuffing ('cheap cheap cheap ...')."""
    max_upper_share: float = 0.8
    """Share of Latin letters in capitals, over at least 20 letters: a shouted text."""
    per_category: int = 1000
    """Rows kept per category at most (stratified sampling): the head must not drown the tail."""
    consistency_min_confidence: float = 0.9
    """The catalog model's category must be this sure to overrule a row's own category."""


REPEATED_PUNCTUATION = re.compile(r"([^\w\s])\1{3,}")
"""The same mark four times or more: '!!!!', '？？？？', '~~~~'."""
EMOJI_RUN = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\ufe0f\u200d]{3,}"
)
"""Three emoji or pictographs in a row (variation selectors and joiners inside a sequence count)."""
NAME = re.compile(r"\bmy name is\s+[a-z]|\bcall me\s+[a-z]|我叫\s*[\u4e00-\u9fff]{2,3}|本人姓[\u4e00-\u9fff]", re.I)
CN_ID = re.compile(r"(?<!\d)[1-9]\d{5}(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?!\d)")
"""A Chinese resident ID number: region, birth date, sequence, check digit."""
ID_WORDS = re.compile(r"身份证号|身份证号码|passport (?:no|number)|social security number|\bssn\b", re.I)
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
ADDRESS = re.compile(
    r"\b\d{1,5}\s+(?:[a-z]+\s+){1,3}(?:street|st\.|road|rd\.|avenue|ave\.|lane|boulevard|blvd)\b"
    r"|(?:住址|地址|收货地址)\s*[:：]|\d+\s*号楼|\d+\s*单元\s*\d+|\d{3,4}\s*室",
    re.I,
)


def luhn(digits: str) -> bool:
    """Whether a digit string passes the Luhn check of bank-card numbers."""
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def texts_of(row: dict[str, Any]) -> list[str]:
    """The row's own words: title, description and attribute values."""
    values = [row.get("title"), row.get("description"), *((row.get("attributes") or {}).values())]
    return [v for v in values if isinstance(v, str) and v.strip()]


def is_cjk(c: str) -> bool:
    return "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf"


def words(text: str) -> list[str]:
    """Latin words and single CJK characters."""
    return re.findall(r"[^\W\d_]+|\d+", "".join(f" {c} " if is_cjk(c) else c for c in text.casefold()))


# --- the rules: row -> why it is dropped, or None -------------------------------------------------


def text_quality(row: dict[str, Any], config: CleaningConfig) -> str | None:
    """Structure: a title or a description, words in it, no stuffing, no shouting."""
    title, description = (row.get("title") or "").strip(), (row.get("description") or "").strip()
    if not title and not description:
        return "no title and no description"
    text = f"{title}\n{description}"
    found = words(text)
    if not any(w.isalpha() for w in found):
        return "no words"
    if len(found) >= 8 and max(found.count(w) for w in set(found)) / len(found) > config.max_same_word_share:
        return "one word repeated over and over"
    letters = [c for c in text if c.isascii() and c.isalpha()]
    if len(letters) >= 20 and sum(c.isupper() for c in letters) / len(letters) > config.max_upper_share:
        return "shouted (capitals)"
    return None


def risk(row: dict[str, Any], policy: Policy) -> str | None:
    """The moderation's rules, one source: what `ipl index` quarantines."""
    return trust.row_problem(row, policy)


def length(row: dict[str, Any], config: CleaningConfig) -> str | None:
    """Title and description within bounds (a missing description is allowed: task rows only)."""
    title, description = (row.get("title") or "").strip(), (row.get("description") or "").strip()
    if title and not config.min_title_chars <= len(title) <= config.max_title_chars:
        return f"title of {len(title)} characters"
    least = config.min_description_chars // (2 if row.get("lang") == "zh" else 1)
    if description and not least <= len(description) <= config.max_description_chars:
        return f"description of {len(description)} characters"
    return None


def privacy(row: dict[str, Any]) -> str | None:
    """Personal data beyond contact details (those are the risk rule's): names, ID and card numbers,
    street addresses."""
    for text in texts_of(row):
        text = trust.clean(text)
        if NAME.search(text):
            return "a person's name"
        if CN_ID.search(text) or ID_WORDS.search(text):
            return "an identity document number"
        if any(luhn(re.sub(r"\D", "", m.group())) for m in CARD.finditer(text)):
            return "a bank-card number"
        if ADDRESS.search(text):
            return "a street address"
    return None


def special_characters(row: dict[str, Any], config: CleaningConfig) -> str | None:
    """Runs of punctuation or emoji, and texts made mostly of symbols."""
    for text in texts_of(row):
        if m := REPEATED_PUNCTUATION.search(text):
            return f"a run of {m.group()[:8]!r}"
        if EMOJI_RUN.search(text):
            return "a run of emoji"
        chars = [c for c in text if not c.isspace()]
        special = sum(not (c.isalnum() or is_cjk(c)) and unicodedata.category(c)[0] in "PS" for c in chars)
        if len(chars) >= 20 and special / len(chars) > config.max_special_share:
            return f"{special / len(chars):.0%} symbols"
    return None


class Duplicates:
    """An exact repeat (case and blanks folded) of the title and description of an earlier row."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, row: dict[str, Any]) -> str | None:
        if not (row.get("description") or "").strip():
            return None  # a title alone ('Lemon') repeats across photos of one product: no duplicate
        key = " ".join(f"{row.get('title') or ''}\n{row.get('description')}".casefold().split())
        if key in self.seen:
            return "the same title and description as an earlier row"
        self.seen.add(key)
        return None


# --- applying them, with counts --------------------------------------------------------------------


@dataclass
class Step:
    """One named rule and what it dropped."""

    name: str
    what: str
    check: Callable[[dict[str, Any]], str | None]
    dropped: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, row: dict[str, Any]) -> bool:
        """Whether the row is kept."""
        reason = self.check(row)
        if reason is None:
            return True
        self.drop(row, reason)
        return False

    def drop(self, row: dict[str, Any], reason: str) -> None:
        self.dropped += 1
        if len(self.examples) < 5:
            self.examples.append((str(row.get("id")), reason))

    def summary(self) -> dict[str, Any]:
        return {"what": self.what, "dropped": self.dropped, "examples": [list(e) for e in self.examples]}


def text_steps(policy: Policy, config: CleaningConfig) -> list[Step]:
    """The rules that read only a row's text, in the order they run (cheapest first)."""
    return [
        Step("text_quality", "no title or description, no words, keyword stuffing or shouting",
             lambda r: text_quality(r, config)),
        Step("risk", "contact details, off-platform lures, instructions to the model, prohibited goods, banned terms"
             " (the moderation rules, ipl_tools.trust)", lambda r: risk(r, policy)),
        Step("length", f"title outside {config.min_title_chars}-{config.max_title_chars} characters, description"
             f" outside {config.min_description_chars}-{config.max_description_chars}", lambda r: length(r, config)),
        Step("privacy", "a person's name, an ID or bank-card number, a street address", privacy),
        Step("special_characters", "runs of punctuation or emoji, mostly symbols",
             lambda r: special_characters(r, config)),
        Step("duplicate", "the same title and description as an earlier row", Duplicates()),
    ]
