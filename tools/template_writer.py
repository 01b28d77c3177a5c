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
    "open": ["Selling my {thing}.", "Up for grabs: {thing}.", "Letting go of my {thing}.", "For sale: {thing}."],
    "details": ["Details: {details}.", "Quick facts: {details}.", "What you get: {details}."],
    "note": ["Condition, in my words: {note}.", "About the condition: {note}."],
    "no_note": ["Condition is as you see in the photos.", "Please check the photos for condition."],
    "close": ["Happy to answer questions.", "Message me if you're interested.", "Ask if you'd like more photos."],
}
ZH = {
    "open": ["出{thing}。", "转让{thing}。", "闲置{thing}，低价出。"],
    "details": ["{details}。", "具体信息：{details}。"],
    "note": ["成色：{note}。", "卖家说明：{note}。"],
    "no_note": ["成色以照片为准。", "具体成色请看图。"],
    "close": ["有问题欢迎私聊。", "感兴趣的话直接聊。", "需要更多照片可以问我。"],
}
EN_PHRASE = {
    "Brand": "by {v}", "Colour": "{lv} colour", "Gender": "for {lv}", "Usage": "{lv} use",
    "Pattern": "{lv} pattern", "Sleeve Length": "{lv}", "Fit": "{lv} fit", "Fabric": "{lv} fabric",
    "Neck": "{lv} neck", "Season": "for {lv}",
}
ZH_NAME = {
    "Brand": "品牌", "Colour": "颜色", "Gender": "适用", "Usage": "用途", "Pattern": "图案",
    "Sleeve Length": "袖长", "Fit": "版型", "Fabric": "面料", "Neck": "领型", "Season": "季节",
}


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


def compose_title(facts: dict[str, Any]) -> str:
    """A title from the identical product's name, or from brand, colour and category."""
    if facts.get("product"):
        return str(facts["product"])
    attrs = dict(facts.get("attributes") or [])
    zh = facts.get("lang") == "zh"
    parts = [attrs.get("Brand"), attrs.get("Colour"), facts.get("category") or ("物品" if zh else "item")]
    title = " ".join(p for p in parts if p)
    return title.replace(" ", "") if zh else title[0].upper() + title[1:]


def write(facts: dict[str, Any]) -> str:
    zh = facts.get("lang") == "zh"
    words = ZH if zh else EN
    seed = int(hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest(), 16)

    def pick(key: str, **kw: str) -> str:
        options = words[key]
        return options[seed % len(options) if key == "open" else (seed // 7) % len(options)].format(**kw)

    attrs = [(n, v) for n, v in facts.get("attributes") or [] if v]
    thing = compose_title(facts) if zh else _en_thing(facts)
    if zh:
        details = "，".join(f"{ZH_NAME.get(n, n)}{v}" for n, v in attrs)
    else:
        details = ", ".join(_en_phrase(n, v) for n, v in attrs)
    sentences = [pick("open", thing=thing)]
    if details:
        sentences.append(pick("details", details=details))
    note = (facts.get("seller_note") or "").strip().rstrip(".。!！")
    sentences.append(pick("note", note=note) if note else pick("no_note"))
    sentences.append(pick("close"))
    return ("" if zh else " ").join(sentences)


def _en_phrase(name: str, value: str) -> str:
    """'regular fit' for Fit: Regular Fit, not 'regular fit fit'."""
    phrase = EN_PHRASE.get(name, name.lower() + " {v}").format(v=value, lv=value.lower())
    return re.sub(r"\b(\w+) \1\b", r"\1", phrase)


def _en_thing(facts: dict[str, Any]) -> str:
    if facts.get("product"):
        return str(facts["product"])
    category = facts.get("category")
    return category.lower() if category else "item"


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
