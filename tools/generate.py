"""generate: write the description with the Context's generator (a LangChain chat model), streaming.

The instruction follows the seed's three types, which the graph's routers pick (`state.mode`, set by
write_from_photos, write_from_template or write_with_references): image only; image + attribute
template; image + template + reference values. A generator that fails or runs past the
Context's timeout yields a draft from the known facts, flagged for the seller to edit by hand.
Moderation watches the stream: the model is stopped at the first sentence that breaks a rule.
"""

from __future__ import annotations

import base64
import contextvars
import io
import json
import queue
import threading
import time
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime
from PIL import Image, ImageOps

from ipl_graph import plugins
from ipl_graph.context import Context
from ipl_graph.policies import Policy, load_policy
from ipl_graph.prompts import render
from ipl_graph.state import State
from ipl_tools.facts import facts_of
from ipl_tools.grounding import Grounding
from ipl_tools.moderate_stream import StreamModerator, prewarm
from ipl_tools.template_writer import compose_title, write

LANGUAGES = {"en": "English", "zh": "Simplified Chinese"}


def write_from_photos(state: State) -> dict[str, Any]:
    """Image-only writing: nothing in the catalog is known to be this item (or it could not be asked)."""
    return {"mode": "image_only"}


def write_from_template(state: State) -> dict[str, Any]:
    """Image + the category's attribute template: the category is known, no reference is trusted."""
    return {"mode": "image_template"}


def write_with_references(state: State) -> dict[str, Any]:
    """Image + template + the trusted references' values: the identical product is in the catalog."""
    return {"mode": "image_template_refs"}


def build_messages(
    state: State, with_images: bool, image_max_side: int = 768, policy: Policy | None = None
) -> list[BaseMessage]:
    facts = facts_of(state, policy)
    mode = facts["mode"]
    note = facts["seller_note"] or "(none)"
    facts_json = json.dumps(facts, ensure_ascii=False)
    template = ", ".join(state.template.attributes if state.template else []) or "(none)"
    if mode == "image_only":
        text = render("image_only", seller_note=note, facts=facts_json)
    elif mode == "image_template":
        text = render("image_template", category=facts["category"] or "item", attributes=template, seller_note=note,
                      facts=facts_json)
    else:
        refs = "\n".join(
            f"- {r.title or r.id}: {json.dumps(r.attributes, ensure_ascii=False)}"
            for r in state.trusted
        )
        text = render("image_template_refs", category=facts["category"] or "item", attributes=template,
                      references=refs, seller_note=note, facts=facts_json)
    content: list[str | dict[str, Any]] = [{"type": "text", "text": text}]
    if with_images:
        content += [{"type": "image_url", "image_url": {"url": photo_data_url(image.path, image_max_side)}}
                    for image in state.images]
    return [SystemMessage(render("system", language=LANGUAGES[state.lang])), HumanMessage(content=content)]


def photo_data_url(path: str, max_side: int) -> str:
    """The photo as a JPEG data URL, upright and at most `max_side` pixels a side (what a model needs,
    not the 20 MB a phone may send)."""
    with Image.open(path) as photo:
        image = ImageOps.exif_transpose(photo).convert("RGB")
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def limits(policy: Policy) -> dict[str, Any]:
    """The policy's generation limits as LangChain's common call arguments."""
    g = policy.generation
    return {"max_tokens": g.max_new_tokens, "temperature": g.temperature, "top_p": g.top_p}


def stream_text(
    model: Any, messages: list[BaseMessage], timeout_s: float, moderator: StreamModerator | None = None,
    **kwargs: Any,
) -> str:
    """Stream the model's reply on a worker thread (keeping the run's callbacks) within `timeout_s`.
    The moderator reads each chunk before the next is asked for: at the first bad sentence the model
    is stopped and the text so far returned (moderate_stream then cuts it)."""
    chunks: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()
    ctx = contextvars.copy_context()

    def work() -> None:
        stream = None
        try:
            stream = model.stream(messages, **kwargs)  # a client may fail here already: reported, not lost
            for chunk in stream:
                text = _text_of(chunk.content)
                chunks.put(("chunk", text))
                if stop.is_set() or (moderator is not None and moderator.feed(text)):
                    break
            chunks.put(("done", None))
        except Exception as exc:  # reported to the graph as a degraded draft, not raised
            chunks.put(("error", exc))
        finally:
            if stream is not None:
                stream.close()  # stops the model: closes the HTTP stream, halts local generation

    threading.Thread(target=lambda: ctx.run(work), daemon=True).start()
    deadline = time.monotonic() + timeout_s
    parts: list[str] = []
    while True:
        try:
            kind, value = chunks.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            stop.set()
            raise TimeoutError(f"no complete reply within {timeout_s:g} s") from None
        if kind == "done":
            return "".join(parts).strip()
        if kind == "error":
            raise value
        parts.append(value)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def generate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    ctx = runtime.context
    policy = load_policy(ctx.policy)
    prewarm()  # the moderation Guard loads while the model writes
    facts = facts_of(state, policy)
    model = plugins.generator(ctx.generator, ctx.model, ctx.base_url)
    messages = build_messages(state, getattr(model, "multimodal", False), policy.generation.image_max_side, policy)
    moderator = StreamModerator(policy, Grounding.of(state, policy))
    update: dict[str, Any] = {"title": compose_title(facts), "generator": ctx.generator}
    try:
        text = stream_text(model, messages, ctx.generate_timeout_s, moderator, **limits(policy))
        if not text:
            raise ValueError("the generator returned no text")
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return update | {"description": write(facts), "degraded": f"generator failed ({reason}); edit by hand"}
    return update | {"description": text}
