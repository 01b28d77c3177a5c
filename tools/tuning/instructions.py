"""Instruction records built from one cleaned listing row.

The description samples follow the seed's three instruction types, and their prompts are the very
messages the graph sends at listing time (`generate.build_messages` on a State holding what the
graph would have found), so the model is tuned on what it will be asked:

- `image_only`: the photos, no category, no attributes;
- `image_template`: + the category's attribute template, with the values the row states (its own
  attributes, or read from its own text);
- `image_template_refs`: + the identical product's catalog listings as references.

The domain-understanding tasks the data supports: `category`, `attributes` (JSON) and `title` from
the photos; `attributes_text` and `title_text` from the text alone (rows without photos).

A record is ChatML-style: `messages` (system, user, assistant; each content a list of parts, image
parts `{"type": "image", "image": PATH}` first, as Qwen2-VL was trained and the graph sends them)
plus `images` (the same paths, in order), `type`, `lang` and the `source` row id: TRL's SFT trainer
reads it as it is (messages + images), and so do Qwen-VL recipes built on `qwen_vl_utils`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ipl_graph.policies import Policy
from ipl_graph.prompts import render
from ipl_graph.schemas import Neighbour, Template
from ipl_graph.state import State
from ipl_tools import trust
from ipl_tools.generate import LANGUAGES, build_messages

DESCRIPTION_TYPES = ("image_only", "image_template", "image_template_refs")
TASK_TYPES = ("category", "attributes", "title", "attributes_text", "title_text")


def record(kind: str, row: dict[str, Any], system: str, user: str, answer: str,
           images: list[str]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "image", "image": path} for path in images]
    content.append({"type": "text", "text": user})
    return {
        "type": kind, "lang": row.get("lang") or "en", "source": str(row["id"]),
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": system}]},
            {"role": "user", "content": content},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
        "images": images,
    }


def tidy(text: str) -> str:
    """A listing text as a target: cleaned (trust.clean), lines stripped, no runs of blank lines."""
    lines = [line.strip() for line in trust.clean(text).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def lang_of(row: dict[str, Any]) -> str:
    return "zh" if row.get("lang") == "zh" else "en"


def attribute_names(row: dict[str, Any], policy: Policy) -> list[str]:
    """The category's template (the generic one for a row without a category), then any other
    attribute the row itself states."""
    names, _ = policy.templates.for_category(row.get("category"))
    own = [n for n in (row.get("attributes") or {}) if n.casefold() not in {m.casefold() for m in names}]
    return [*names, *own]


def attribute_values(row: dict[str, Any], names: list[str], policy: Policy) -> dict[str, str]:
    """For each name, the row's own value, else one read off its own title and description (a colour
    word or a known brand, as the policy spells them); names with neither are left out."""
    own = {str(k).casefold(): v for k, v in (row.get("attributes") or {}).items() if isinstance(v, str | int | float)}
    text = f"{row.get('title') or ''}\n{row.get('description') or ''}".casefold()
    values: dict[str, str] = {}
    for name in names:
        value = own.get(name.casefold())
        if value is None or not str(value).strip():
            value = read_from_text(name, text, policy)
        if value is not None and str(value).strip():
            values[name] = tidy(str(value))
    return values


def read_from_text(name: str, text: str, policy: Policy) -> str | None:
    if name.casefold() in {"colour", "color"}:
        for colour, spellings in policy.moderation.colours.items():
            if any(_mentions(text, s.casefold()) for s in spellings):
                return colour
    if name.casefold() == "brand":
        return next((b for b in policy.moderation.known_brands if _mentions(text, b.casefold())), None)
    return None


def _mentions(text: str, word: str) -> bool:
    if not word.isascii():
        return word in text
    return re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", text) is not None


def graph_state(row: dict[str, Any], kind: str, policy: Policy, references: list[Neighbour]) -> State:
    """The State the graph would hold when it writes this row's listing with instruction `kind`."""
    lang = lang_of(row)
    if kind == "image_only":
        return State(lang=lang, mode=kind)  # type: ignore[arg-type]
    names = attribute_names(row, policy)
    return State(
        lang=lang,  # type: ignore[arg-type]
        category=row["category"], category_confidence=1.0, category_path=list(row.get("category_path") or []),
        template=Template(category=row["category"], attributes=names),
        attributes=attribute_values(row, names, policy), mode=kind,
        trusted=list(references) if kind == "image_template_refs" else [],
    )


def description_records(row: dict[str, Any], policy: Policy, references: list[Neighbour]) -> list[dict[str, Any]]:
    """The seed's three instruction types this row supports; the target is its own description."""
    description = tidy(row.get("description") or "")
    if not row.get("images") or not description:
        return []
    kinds = ["image_only"]
    if row.get("category"):
        kinds.append("image_template")
        if references:
            kinds.append("image_template_refs")
    out = []
    for kind in kinds:
        system, human = build_messages(graph_state(row, kind, policy, references), with_images=False, policy=policy)
        user = human.content[0]["text"]  # type: ignore[index]
        out.append(record(kind, row, str(system.content), user, description, list(row["images"])))
    return out


def task_records(row: dict[str, Any], policy: Policy) -> list[dict[str, Any]]:
    """The domain-understanding tasks this row supports."""
    lang = lang_of(row)
    system = render("task_system", language=LANGUAGES[lang])
    images = list(row.get("images") or [])
    names = attribute_names(row, policy)
    values = attribute_values(row, names, policy)
    title = tidy(row.get("title") or "")
    answer = json.dumps(values, ensure_ascii=False)
    out = []
    if images:
        if row.get("category"):
            out.append(record("category", row, system, render("task_category"), str(row["category"]), images))
        if values:
            out.append(record("attributes", row, system, render("task_attributes", attributes=", ".join(names)),
                              answer, images))
        if title:
            out.append(record("title", row, system, render("task_title", language=LANGUAGES[lang]), title, images))
        return out
    description = tidy(row.get("description") or "")
    if not description:
        return out
    if values:
        listing = f"{title}\n{description}".strip()
        out.append(record("attributes_text", row, system,
                          render("task_attributes_text", attributes=", ".join(names), text=listing), answer, []))
    if title:
        out.append(record("title_text", row, system, render("task_title_text", language=LANGUAGES[lang],
                                                            text=description), title, []))
    return out
