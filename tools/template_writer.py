"""The default generator: a grounded template writer, as a LangChain chat model (no weights).

It reads the facts block the generate node puts in the prompt (category, evidenced attributes in
template order, the identical product's name, the seller's note) and writes a short colloquial
description from them alone, so it cannot state an attribute that has no evidence. Phrasing varies
by listing but is deterministic for the same facts, so recorded runs replay exactly.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

FACTS = re.compile(r"```json\s*(\{.*?\})\s*```", re.S)

EN = {
    "thing": ["Selling my {thing}.", "Up for grabs: my {thing}.", "Letting go of my {thing}.", "For sale: my {thing}."],
    "no_condition": ["Condition is as you see in the photos.", "The photos show the condition."],
    "condition": ["Condition: {x}.", "It's {x}.", "Condition-wise: {x}."],
    "flaws": ["To be upfront: {x}.", "One thing to know: {x}."],
    "reason": ["Selling because {x}.", "Why I'm selling: {x}."],
    "closing": ["Any questions, just ask.", "Message me if you're interested.", "Happy to send more photos."],
}
ZH = {
    "thing": ["出{thing}。", "转让{thing}。", "闲置{thing}出。"],
    "no_condition": ["成色以照片为准。", "具体成色请看图。"],
    "condition": ["成色：{x}。", "{x}。"],
    "flaws": ["说明一下：{x}。", "小瑕疵：{x}。"],
    "reason": ["出的原因：{x}。", "{x}，所以出了。"],
    "closing": ["有问题欢迎私聊。", "感兴趣的话直接聊。", "需要更多照片可以问我。"],
}
"""Phrasings; a Chinese register mined from real listings (`voice` in the facts) is preferred."""
VOICED = ("opening", "closing")
"""Sentences a mined voice (real listings' own phrases) may stand in for."""
ADJECTIVES = ("Colour", "Pattern", "Fit", "Sleeve Length", "Neck")
"""Attributes that read as words before the type ('a white printed t-shirt')."""
EN_PHRASE = {"Brand": "by {v}", "Gender": "for {lv}", "Usage": "for {lv} use", "Fabric": "{lv} fabric",
             "Season": "for {lv}"}
ZH_NAME = {
    "Brand": "品牌", "Colour": "颜色", "Gender": "适用", "Usage": "用途", "Pattern": "图案",
    "Sleeve Length": "袖长", "Fit": "版型", "Fabric": "面料", "Neck": "领型", "Season": "季节", "Size": "尺码",
}
CATALOG_NOISE = re.compile(r"\s*[\[(（【][^\])）】]*\d[^\])）】]*[\])）】]|\s+#\S+|\s+-\s*$|\s{2,}")
"""Catalog codes in brackets ('(SKU 1234)'), hashtags and trailing dashes: no part of a product's name."""


def parse_facts(messages: list[BaseMessage]) -> dict[str, Any]:
    """The facts block of the last human message (text parts only)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            content = message.content
            text = content if isinstance(content, str) else " ".join(
                p.get("text", "") for p in content if isinstance(p, dict)
            )
            found = FACTS.findall(text)
            if found:
                return json.loads(found[-1])
    raise ValueError("the prompt has no ```json facts``` block for the template writer")


def product_name(name: str) -> str:
    """A trusted product's catalog name as a seller would title it: codes and noise removed."""
    return CATALOG_NOISE.sub(lambda m: " " if m.group().isspace() else "", name).strip(" -,")


def compose_title(facts: dict[str, Any]) -> str:
    """The identical product's name, or the evidenced attributes in the order the catalog's own
    titles of this category use (`title_order`), around the word for the thing."""
    zh = facts.get("lang") == "zh"
    if facts.get("product"):
        title = product_name(str(facts["product"]))
    else:
        attrs = dict(facts.get("attributes") or [])
        thing = facts.get("thing") or facts.get("category") or ("物品" if zh else "Item")
        order = facts.get("title_order") or ["Brand", "Colour", "{category}"]
        if "{category}" not in order:
            order = [*order, "{category}"]
        local = facts.get("local") or {}
        words = [thing if slot == "{category}" else local.get(attrs.get(slot), attrs.get(slot)) for slot in order]
        title = _join([w for w in words if w], zh)
    condition = _condition_word(facts) if zh else None
    if condition and condition not in title:
        title = f"{condition}{title}"
    return title[:1].upper() + title[1:] if title else title


def _join(words: list[str], zh: bool) -> str:
    """Words as a title: spaced in English; in Chinese, a space only between two Latin words."""
    if not zh:
        return " ".join(words)
    out = ""
    for word in words:
        out += (" " if out and out[-1].isascii() and out[-1].isalnum() and word[:1].isascii() else "") + word
    return out


def _condition_word(facts: dict[str, Any]) -> str | None:
    """A short condition word of the seller's own for a Chinese title ('全新', '九成新')."""
    for clause in (facts.get("note") or {}).get("condition", []):
        if len(clause) <= 6 and not clause.isascii():
            return clause
    return None


def write(facts: dict[str, Any]) -> str:
    """The description, sentence by sentence in the plan of the item's kind (`facts['plan']`), each
    sentence from the facts alone: the thing, its attributes, the trusted reference's own words, the
    parts of the seller's hint where they belong, and a closing."""
    zh = facts.get("lang") == "zh"
    seed = int(hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest(), 16)
    words = ZH if zh else EN
    voice = facts.get("voice") or {}

    def pick(key: str, salt: int = 0, **kw: str) -> str:
        options = (voice.get(key) if key in VOICED else None) or words[key]
        return options[(seed // (7 ** salt)) % len(options)].format(**kw)

    note = facts.get("note")
    if note is None:  # facts without a parsed note (older callers): the whole note is the condition
        note = {"condition": [facts["seller_note"]]} if (facts.get("seller_note") or "").strip() else {}
    plan = facts.get("plan") or ["thing", "attributes", "reference", "condition", "used_for", "flaws", "included",
                                 "reason", "handover", "price", "closing"]
    sentences: list[str] = []
    for salt, step in enumerate(plan):
        sentence = _sentence(step, facts, note, zh, lambda key, _salt=salt, **kw: pick(key, _salt, **kw))
        if sentence:
            sentences.append(sentence)
    for extra in note.get("note", []):  # what the seller said that no part names: kept, in their words
        sentences.insert(-1, _as_sentence(extra, zh))
    return ("" if zh else " ").join(sentences)


def _sentence(step: str, facts: dict[str, Any], note: dict[str, list[str]], zh: bool, pick: Any) -> str | None:
    attrs = [(n, v) for n, v in facts.get("attributes") or [] if v]
    if step == "thing":
        opening = pick("opening") if zh and (facts.get("voice") or {}).get("opening") else None
        thing = compose_title({**facts, "note": {}}) if zh else _en_thing(facts)
        return f"{opening}，{thing}。" if opening else pick("thing", thing=thing)  # the opening says it is for sale
    if step == "attributes":
        return _zh_details(attrs, facts) if zh else _en_details(attrs, facts)
    if step == "reference":
        return facts.get("reference") or None
    if step == "closing":
        return pick("closing")
    if step == "condition":
        given = note.get("condition", [])
        if not given:
            return pick("no_condition")
        return pick("condition", x=_list(given, zh))
    if step in ("flaws", "reason") and note.get(step):
        return pick(step, x=_list(note[step], zh))
    if note.get(step):  # used_for, included, handover, price, best_before, specs: the seller's words
        return _as_sentence(_list(note[step], zh), zh)
    return None


def _list(clauses: list[str], zh: bool) -> str:
    text = ("，" if zh else ", ").join(c.strip().rstrip(".。!！") for c in clauses)
    return text if zh else text[:1].lower() + text[1:] if text[:2].isupper() is False else text


def _as_sentence(text: str, zh: bool) -> str:
    text = text.strip().rstrip(".。!！,，")
    if zh:
        return f"{text}。"
    return f"{text[:1].upper()}{text[1:]}."


def _en_details(attrs: list[tuple[str, str]], facts: dict[str, Any]) -> str | None:
    """'It's a white printed t-shirt, for men.' or, when the opening already names the thing, 'It's
    white, printed, for men.': adjectives first, the rest after; a value already said is not repeated."""
    said = _en_thing(facts).casefold()
    attrs = [(n, v) for n, v in attrs if v.casefold() not in said]
    if not attrs:
        return None
    adjectives = [v.lower() for n, v in attrs if n in ADJECTIVES]
    rest = [_en_phrase(n, v) for n, v in attrs if n not in ADJECTIVES]
    noun = (facts.get("thing") or "").lower()
    if noun and noun not in said and adjectives:
        head = " ".join([*adjectives, noun])
        article = "an" if head[:1] in "aeiou" else "a"
        return f"It's {article} {head}" + (f", {', '.join(rest)}" if rest else "") + "."
    return f"It's {', '.join([*adjectives, *rest])}."


def _zh_details(attrs: list[tuple[str, str]], facts: dict[str, Any]) -> str | None:
    said = compose_title(facts)
    local = facts.get("local") or {}
    parts = [f"{ZH_NAME.get(n, n)}{local.get(v, v)}" for n, v in attrs if local.get(v, v) not in said]
    return "，".join(parts) + "。" if parts else None


def _en_phrase(name: str, value: str) -> str:
    """'regular fit' for Fit: Regular Fit, not 'regular fit fit'."""
    phrase = EN_PHRASE.get(name, name.lower() + " {v}").format(v=value, lv=value.lower())
    return re.sub(r"\b(\w+) \1\b", r"\1", phrase)


def _en_thing(facts: dict[str, Any]) -> str:
    if facts.get("product"):
        return product_name(str(facts["product"]))
    thing = facts.get("thing") or facts.get("category")
    brand = dict(facts.get("attributes") or []).get("Brand")
    if not thing:
        return f"{brand} item" if brand else "item"
    thing = thing.lower()
    return f"{brand} {thing}" if brand else thing


def _tokens(text: str) -> list[str]:
    return re.findall(r"\S+\s*", text) if text.isascii() else re.findall(r".{1,2}", text, re.S)


class TemplateChatModel(BaseChatModel):
    """Writes a listing description from the prompt's facts block; streams it word by word."""

    @property
    def _llm_type(self) -> str:
        return "ipl-template"

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=write(parse_facts(messages))))])

    def _stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for token in _tokens(write(parse_facts(messages))):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
