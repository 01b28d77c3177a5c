"""Text of catalog rows: their stated attributes, folded text, and IDF-weighted trigram matching of
OCR text against listing titles."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np


def attributes_of(meta: dict[str, Any]) -> dict[str, Any]:
    """The attributes a catalog row states: stored as a JSON string in the index, or already a dict."""
    attrs = meta.get("attributes")
    return attrs if isinstance(attrs, dict) else json.loads(attrs or "{}")


def fold(text: str) -> str:
    """Case- and accent-folded text: 'Mjölk' -> 'mjolk'."""
    if text.isascii():  # most catalog text: nothing to decompose (~8x faster over a catalog's rows)
        return text.lower()
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


def same(value: Any, truth: Any) -> bool:
    """Whether a voted value is the stated one, folded."""
    return value is not None and fold(str(value)) == fold(str(truth))


def trigrams(text: str) -> set[str]:
    """Character trigrams of the words (3+ letters) of a text, padded at word ends."""
    grams: set[str] = set()
    for word in re.findall(r"[a-z]{3,}", fold(text)):
        padded = f" {word} "
        grams.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return grams


def text_match(query: set[str], listing: set[str], idf: dict[str, float]) -> float:
    """IDF-weighted cosine of two trigram sets, in [0, 1]."""
    if not query or not listing:
        return 0.0
    shared = sum(idf.get(g, 0.0) ** 2 for g in query & listing)
    norm_q = sum(idf.get(g, 0.0) ** 2 for g in query) ** 0.5
    norm_l = sum(idf.get(g, 0.0) ** 2 for g in listing) ** 0.5
    return shared / (norm_q * norm_l) if norm_q and norm_l else 0.0


def listing_text(meta: dict[str, Any]) -> str:
    return " ".join([meta.get("title") or "", *[str(v) for v in attributes_of(meta).values()]])


def words(text: str) -> set[str]:
    """The folded words of 4+ letters of a text, in the singular: what the OCR text and a listing's text
    are compared on word for word ('orange&red' -> {'orange'}; OCR debris like 'OD' is left out)."""
    return {singular(w) for w in re.findall(r"[a-z]{4,}", fold(text))}


def singular(word: str) -> str:
    """'apples' -> 'apple', 'tomatoes' -> 'tomato'; 'glass', 'delicious', 'kiwis' -> 'kiwi'."""
    if word.endswith("oes"):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith(("ss", "us")) else word


def naming_text(meta: dict[str, Any]) -> str:
    """What a listing names its product by: title, stated attribute values, category and its path."""
    path = meta.get("category_path") or "[]"
    path = json.loads(path) if isinstance(path, str) else path
    return " ".join([listing_text(meta), meta.get("category") or "", *map(str, path)])


def vocabulary(metas: Iterable[dict[str, Any]], into: dict[str, int] | None = None) -> dict[str, int]:
    """{word: catalog products (spu, else listing) whose naming text has it}, added to `into` where
    given (a product whose rows come in two calls counts twice: what reads it asks only whether a
    word is in it)."""
    named: dict[str, set[str]] = {}
    for m in metas:
        named.setdefault(str(m.get("spu") or m["listing_id"]), set()).update(words(naming_text(m)))
    counts: Counter[str] = Counter(into or {})
    counts.update(w for ws in named.values() for w in ws)
    return dict(counts)


def clashes(read: Iterable[str], names: str, vocabulary: dict[str, int]) -> set[str]:
    """Words read on the photos that name some catalog product but not this one (`names`: its naming
    text): the pack says 'apple' and the hit is an orange juice."""
    return {w for w in words(" ".join(read)) if w in vocabulary} - words(names)


def stated_values(metas: Iterable[dict[str, Any]],
                  into: dict[str, dict[str, list[str]]] | None = None) -> dict[str, dict[str, list[str]]]:
    """{category: {attribute: the values its catalog rows state, folded}}, added to `into` where
    given: what a voted value is checked against (`IndexModel.states`)."""
    table = {c: {a: set(vs) for a, vs in attrs.items()} for c, attrs in (into or {}).items()}
    for m in metas:
        category = m.get("category")
        if not category:
            continue
        stated = table.setdefault(str(category), {})
        for name, value in attributes_of(m).items():
            if value not in (None, ""):
                stated.setdefault(name, set()).add(fold(str(value)))
    return {c: {a: sorted(vs) for a, vs in attrs.items()} for c, attrs in table.items()}


def document_frequency(metas: Iterable[dict[str, Any]],
                       into: dict[str, int] | None = None) -> tuple[dict[str, int], int]:
    """({title trigram: catalog listings whose text has it}, listings counted) over the rows `metas`,
    added to the counts `into` where given (a listing whose rows come in two calls counts twice)."""
    docs: dict[str, set[str]] = {}
    for m in metas:
        if m["listing_id"] not in docs:  # a listing's photos share its text
            docs[m["listing_id"]] = trigrams(listing_text(m))
    df: Counter[str] = Counter(into or {})
    df.update(g for grams in docs.values() for g in grams)
    return dict(df), len(docs)


def idf(df: dict[str, int], documents: int) -> dict[str, float]:
    """IDF of title trigrams from their document frequency `df` over `documents` listings."""
    n = max(documents, 1)
    return {g: round(float(np.log((n + 1) / (c + 0.5))), 4) for g, c in df.items()}
