"""Each generator backend streams its tokens through the graph (`stream_mode="messages"`): the template
writer; `transformers` with a tiny Qwen2-VL this test builds from a config (no download); `openai`
against a stub HTTP server on 127.0.0.1 that replays a recorded SSE cassette, standing in for a real
vLLM / SGLang / Ollama server. Moderation stops a stream at a planted violation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from pydantic import SecretStr

from fakes import FakeChatModel, generator_plugin
from helpers import QUERIES, write_policy
from ipl_graph import plugins
from ipl_graph.context import Context
from ipl_graph.errors import UserError
from ipl_graph.graph import graph
from ipl_graph.schemas import Photo
from ipl_graph.state import State
from ipl_tools.generate import build_messages
from ipl_tools.generators.openai_compat import OpenAICompatibleChat
from ipl_tools.generators.replay_server import ReplayServer
from ipl_tools.moderate_stream import guard

BANANA = str(QUERIES / "Banana_001.jpg")
JUICE = str(QUERIES / "Bravo-Apple-Juice_001.jpg")
CASSETTE = Path(__file__).resolve().parents[1] / "cassettes" / "openai_chat_stream.json"
MODEL = "qwen2.5-vl-3b-instruct"


@pytest.fixture(scope="module", autouse=True)
def loaded_guard():
    guard()  # loaded before the streams start, so where a stream stops does not depend on timing


def run(inputs: dict, context: Context) -> tuple[list[str], dict]:
    """The generate node's streamed tokens, and the final state."""
    tokens, final = [], {}
    for mode, chunk in graph.stream(inputs, context=context, stream_mode=["messages", "values"]):
        if mode == "values":
            final = chunk
        elif chunk[1]["langgraph_node"] == "generate":
            tokens.append(chunk[0].content)
    return tokens, final


def recorded_text(model: str) -> str:
    interaction = next(i for i in json.loads(CASSETTE.read_text())["interactions"] if i["request"]["model"] == model)
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in interaction["response"]["events"]
                   if isinstance(e, dict))


def test_all_three_backends_are_registered():
    assert {"template", "transformers", "openai"} <= set(plugins.factories("generator"))


def test_template_backend_streams_through_the_graph(ctx):
    tokens, final = run({"photos": [BANANA], "hint": "ripe"}, ctx)
    assert len(tokens) > 5 and final["generator"] == "template"
    assert "".join(tokens).strip() == final["description"] and final["moderation"].passed


# --- transformers: a tiny Qwen2-VL built here ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from tiny_vlm import build

    return str(build(tmp_path_factory.mktemp("tiny-qwen2-vl")))


@pytest.fixture(scope="module")
def greedy_policy(tmp_path_factory) -> str:
    return write_policy(tmp_path_factory.mktemp("policy"), generation={"max_new_tokens": 24, "temperature": 0.0})


def test_transformers_backend_streams_through_the_graph(ctx, tiny_model, greedy_policy):
    run_ctx = Context(index_dir=ctx.index_dir, generator="transformers", model=tiny_model, policy=greedy_policy)
    tokens, written = [], None
    for mode, chunk in graph.stream({"photos": [BANANA]}, context=run_ctx, stream_mode=["messages", "updates"]):
        if mode == "messages" and chunk[1]["langgraph_node"] == "generate":
            tokens.append(chunk[0].content)
        elif mode == "updates" and "generate" in chunk:
            written = chunk["generate"]
    # TextIteratorStreamer flushes at word boundaries; random weights may write one long "word", so
    # the number of chunks depends on the prompt. What matters: the text the generate node wrote is the
    # text that came through the messages stream (moderation, after it, judges random text either way).
    assert any(tokens) and written is not None and written["generator"] == "transformers"
    assert "degraded" not in written
    assert written["description"] == "".join(tokens).strip()


def test_transformers_model_takes_the_photos_as_images_and_the_token_limit(tiny_model):
    from ipl_tools.generators.local_vlm import TransformersChatModel, to_conversation

    model = plugins.get("generator", "transformers", tiny_model, "")
    assert isinstance(model, TransformersChatModel) and model.multimodal
    photo = Photo(path=BANANA, sha256="0" * 64, width=0, height=0)
    messages = build_messages(State(images=[photo, photo]), with_images=True, image_max_side=128)
    conversation, images = to_conversation(messages)
    assert len(images) == 2 and [p["type"] for p in conversation[1]["content"]] == ["image", "image", "text"]
    prompt = model._processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    inputs = model._processor(text=[prompt], images=images, return_tensors="pt")
    assert inputs["pixel_values"].shape[0] > 0 and inputs["image_grid_thw"].shape[0] == 2
    short = model.invoke(messages, max_tokens=2, temperature=0.0).content
    longer = model.invoke(messages, max_tokens=12, temperature=0.0).content
    assert longer.startswith(short) and len(longer) > len(short)  # greedy: the same start, cut by the limit


def test_closing_a_transformers_stream_halts_generation(tiny_model):
    import time

    model = plugins.get("generator", "transformers", tiny_model, "")
    stream = model.stream([HumanMessage("Describe the item.")], max_tokens=3000, temperature=0.0)
    next(stream)
    started = time.monotonic()
    stream.close()  # what moderation or a timeout does
    model._worker.submit(lambda: None).result(timeout=20)  # the generation thread is free again
    assert time.monotonic() - started < 3  # 3000 tokens would take many seconds


@pytest.mark.parametrize("kind", ["missing", "not-a-model"])
def test_transformers_bad_model_path_is_one_line_user_error(ctx, tmp_path, kind):
    path = tmp_path / "model"
    if kind == "not-a-model":
        path.mkdir()
        (path / "config.json").write_text('{"model_type": "bert"}')
    run_ctx = Context(index_dir=ctx.index_dir, generator="transformers", model=str(path))
    with pytest.raises(UserError) as caught:
        graph.invoke({"photos": [BANANA]}, context=run_ctx)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


# --- openai: the stub server replays the cassette over real HTTP/SSE --------------------------------


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer(CASSETTE, delay_s=0.01) as running:
        yield running


def test_openai_backend_streams_through_the_graph(ctx, server):
    run_ctx = Context(index_dir=ctx.index_dir, generator="openai", model=MODEL, base_url=server.base_url)
    tokens, final = run({"photos": [BANANA], "hint": "ripe"}, run_ctx)
    expected = recorded_text(MODEL)
    assert len(tokens) >= 20 and "".join(tokens) == expected
    assert final["description"] == expected.strip() and final["moderation"].passed and final["degraded"] is None
    request = server.requests[-1]
    assert request["stream"] is True and request["max_tokens"] == 256 and request["model"] == MODEL
    parts = request["messages"][1]["content"]
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")  # the photo went along


def test_openai_stream_is_stopped_at_a_planted_phone_number(ctx, server):
    leaky = MODEL + "-leaky"
    run_ctx = Context(index_dir=ctx.index_dir, generator="openai", model=leaky, base_url=server.base_url)
    tokens, final = run({"photos": [BANANA]}, run_ctx)
    assert "".join(tokens).strip().endswith("Text me on 0712 345 6789 and we can sort it out.")
    assert final["description"] == "Selling a bunch of bananas, ripe and ready to eat. They come from my garden."
    assert final["moderation"].violations == ["contact details (phone number)"]
    assert "moderation stopped the text" in final["degraded"]
    server.stop()  # waits for the reply in flight to notice the client left
    total = len(json.loads(CASSETTE.read_text())["interactions"][1]["response"]["events"])
    assert server.sent[-1] < total - 10  # the client hung up: the server was not read to the end


def test_openai_unreachable_server_leaves_a_manual_draft(ctx):
    with ReplayServer(CASSETTE) as stopped:
        url = stopped.base_url
    run_ctx = Context(index_dir=ctx.index_dir, generator="openai", model=MODEL, base_url=url, generate_timeout_s=20)
    _, final = run({"photos": [BANANA], "hint": "ripe"}, run_ctx)
    assert "generator failed" in final["degraded"] and "ripe" in final["description"]


def test_recording_through_the_proxy_keeps_the_reply_and_drops_the_key(server, tmp_path):
    with ReplayServer(upstream=server.base_url) as recorder:
        chat = OpenAICompatibleChat(model=MODEL, base_url=recorder.base_url, api_key=SecretStr("sk-test-secret"))
        text = "".join(str(c.content) for c in chat.stream([HumanMessage("write")]))
    recorder.save(tmp_path / "cassette.json")
    saved = (tmp_path / "cassette.json").read_text()
    assert text == recorded_text(MODEL)
    assert "sk-test-secret" not in saved and "write" not in saved  # no key, no prompt
    with ReplayServer(tmp_path / "cassette.json") as replay:
        chat = OpenAICompatibleChat(model=MODEL, base_url=replay.base_url, api_key=SecretStr("x"))
        assert chat.invoke([HumanMessage("write")]).content == text


# --- a planted wrong brand, through the graph --------------------------------------------------------


def test_a_planted_wrong_brand_is_caught_by_the_grounding_check(ctx):
    reply = "Selling my Tropicana apple juice, unopened. Happy to answer questions."
    name = plugins.register(generator_plugin(planted=lambda: FakeChatModel.saying(reply)), name="test-planted")
    try:
        _, final = run({"photos": [JUICE]}, Context(index_dir=ctx.index_dir, generator="planted"))
    finally:
        plugins.unregister(name)
    assert final["moderation"].violations == ["ungrounded brand: 'Tropicana'"]
    assert final["moderation"].cut_at == 0 and "Tropicana" not in final["description"]
    assert final["description"]  # a draft from the facts stands in
