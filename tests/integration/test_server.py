"""The graph behind the LangGraph server (`ipl serve`): runs through the SDK, the seller's
confirmation step, photo uploads, and bad requests that get a 4xx while the server keeps serving.
The server is started with `--photos-dir samples/grocery`, so runs may name the sample photos by path
(tests/integration/test_server_trust.py has a server without it, and with a token)."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from langgraph_sdk import get_sync_client
from PIL import Image

from helpers import QUERIES, SAMPLE, ipl_server, runtime
from ipl_graph.context import Context
from ipl_graph.face.cli import main
from ipl_graph.graph import builder, route_after_confirm_attributes, route_after_extract_attributes
from ipl_graph.schemas import SafetyVerdict
from ipl_graph.state import State

JUICE = QUERIES / "Bravo-Apple-Juice_001.jpg"
JUICE_AGAIN = SAMPLE / "images" / "Bravo-Apple-Juice_Iconic.jpg"
PAIR = [str(JUICE), str(JUICE_AGAIN)]  # two photos of one juice carton
BANANA = QUERIES / "Banana_001.jpg"
NODES = ["check_safety", "search_similar", "categorize", "gate_matches", "extract_attributes", "fetch_template",
         "generate", "moderate_stream", "truncate", "score_quality"]


def without_writer(nodes: list[str]) -> list[str]:
    """The nodes run, less the one write_* node the router picked (one, and only one, must run)."""
    assert sum(n.startswith("write_") for n in nodes) == 1, nodes
    return [n for n in nodes if not n.startswith("write_")]


@pytest.fixture(scope="module")
def server(sample_index, tmp_path_factory) -> Iterator[str]:
    """`ipl serve` on a free port with the sample index, stopped (with its process group) after the module."""
    with ipl_server(sample_index, tmp_path_factory.mktemp("server") / "server.log", "--photos-dir", str(SAMPLE)) as (
            url, _):
        yield url


@pytest.fixture(scope="module")
def sdk(server):
    return get_sync_client(url=server, timeout=120)


@pytest.fixture(scope="module")
def http(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=120) as client:
        yield client


def png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def data_url(path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(path.read_bytes()).decode()


def upload(http: httpx.Client, path) -> str:
    response = http.post("/ipl/photos", content=path.read_bytes(), headers={"content-type": "image/jpeg"})
    assert response.status_code == 201, response.text
    return response.json()["photo"]


def test_two_photos_stream_a_listing_through_the_sdk(sdk, http):
    photos = [upload(http, JUICE), data_url(JUICE_AGAIN)]  # one uploaded first, one sent inline
    thread = sdk.threads.create()
    nodes, partial = [], ""
    for part in sdk.runs.stream(thread["thread_id"], "listing", input={"photos": photos, "hint": "unopened"},
                                stream_mode=["updates", "messages"]):
        if part.event == "updates":
            nodes += list(part.data)
        elif part.event == "messages/partial" and part.data[0]["content"]:
            assert part.data[0]["content"].startswith(partial.strip())  # the description grows token by token
            partial = part.data[0]["content"]
        assert part.event != "error", part.data
    assert without_writer(nodes) == NODES
    values = sdk.threads.get_state(thread["thread_id"])["values"]
    assert values["category"] == "Juice" and values["attributes"]["Brand"] == "Bravo"
    assert values["description"] == partial.strip() and "unopened" in values["description"]
    assert values["title"] and values["degraded"] is None
    # State holds paths to stored photos, never the bytes of the data URL.
    assert all(p.startswith("/") and os.path.isfile(p) for p in values["photos"])
    assert [image["path"] for image in values["images"]] == values["photos"]


def test_the_index_is_the_servers_and_a_client_cannot_name_another(sdk, http):
    # The index that `ipl serve --index` was given; a run that names one is refused, not run elsewhere.
    thread = sdk.threads.create()
    served = sdk.runs.wait(thread["thread_id"], "listing", input={"photos": [str(BANANA)]})
    assert served["category"] == "Banana"
    refused = http.post("/runs/wait", json={"assistant_id": "listing", "input": {"photos": [str(BANANA)]},
                                            "context": {"index_dir": "/nonexistent-ipl-index"}})
    assert refused.status_code == 422
    assert refused.json()["detail"] == "context.index_dir: set by the server (ipl serve), not by a request"


def test_the_seller_confirms_and_edits_before_the_description_is_written(sdk):
    thread = sdk.threads.create()["thread_id"]
    context = {"confirm": True}
    updates = [p.data for p in sdk.runs.stream(thread, "listing", input={"photos": PAIR},
                                               context=context, stream_mode="updates") if p.event == "updates"]
    question = updates[-1]["__interrupt__"][0]["value"]
    assert question["category"] == "Juice" and question["attributes"]["Brand"] == "Bravo"
    assert question["wanted"] and "generate" not in str(updates)
    assert sdk.threads.get_state(thread)["next"] == ["confirm_attributes"]

    edits = {"category": "Juice", "attributes": {"Brand": "Bravo", "Volume": "1 L"}}
    resumed = sdk.runs.stream(thread, "listing", command={"resume": edits}, context=context, stream_mode="updates")
    nodes = [next(iter(p.data)) for p in resumed if p.event == "updates"]
    assert without_writer(nodes) == ["confirm_attributes", "fetch_template", "generate", "moderate_stream", "truncate",
                                     "score_quality"]
    listing = sdk.threads.get_state(thread)["values"]
    assert listing["attributes"]["Volume"] == "1 L" and listing["evidence"]["Volume"] == "seller"
    assert listing["evidence"]["Brand"] != "seller"  # unchanged values keep their evidence
    assert "1 L" in listing["description"]


def test_a_prohibited_category_typed_by_the_seller_ends_the_run(sdk):
    thread = sdk.threads.create()["thread_id"]
    context = {"confirm": True}
    sdk.runs.wait(thread, "listing", input={"photos": [str(BANANA)]}, context=context)
    listing = sdk.runs.wait(thread, "listing", command={"resume": {"category": "Weapons"}}, context=context)
    assert listing["degraded"] == "unsafe" and "prohibited category" in listing["safety"]["reason"]


@pytest.mark.parametrize("request_, status, message", [
    (("POST", "/ipl/photos", {"content": b"just some text", "headers": {"x-filename": "notes.jpg"}}),
     422, "notes.jpg: not a readable image"),
    (("POST", "/ipl/photos", {"content": b"\0" * 50_000_000}), 413, "50.0 MB is over the 20 MB limit"),
    (("POST", "/ipl/photos", {"content": b""}), 422, "the file is empty"),
    (("POST", "/ipl/photos", {"content": png(Image.new("RGB", (1, 1)))}), 422,
     "1x1 pixels is too small to show the item; take a photo at least 32 pixels on its shorter side"),
    (("POST", "/runs/wait", {"json": {"assistant_id": "listing", "input": {"photos": [str(BANANA)] * 30}}}),
     422, "input.photos: 30 photos is over the limit of 9"),
    (("POST", "/runs/wait", {"json": {"assistant_id": "listing", "input": {"photos": ["data:image/png;base64,aGk="]}}}),
     422, "data URL: not a readable image"),
    (("POST", "/runs/wait", {"json": {"assistant_id": "listing", "input": {"photos": ["/no/such/photo.jpg"]}}}),
     422, "input.photos[0]: not an uploaded photo"),
    (("POST", "/ipl/photos", {"content": (QUERIES / "Banana_001.jpg").read_bytes()[:2000]}), 422, "truncated"),
    (("POST", "/threads/9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d/runs/stream",
      {"json": {"assistant_id": "listing", "input": {"photos": [str(BANANA)]}}}), 404, "not found"),
    (("GET", "/threads/9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d/state", {}), 404, "not found"),
], ids=["not-an-image", "50MB", "empty", "1x1", "30-photos", "bad-data-url", "missing-path", "truncated-upload",
        "unknown-thread", "unknown-thread-state"])
def test_bad_requests_get_a_clear_4xx(http, request_, status, message):
    method, path, kwargs = request_
    response = http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert http.get("/ok").status_code == 200


def test_the_server_keeps_serving_after_bad_requests(http, sdk):
    http.post("/ipl/photos", content=b"\0" * 50_000_000)
    http.post("/runs/wait", json={"assistant_id": "listing", "input": {"photos": ["data:,"]}})
    listing = sdk.runs.wait(None, "listing", input={"photos": [upload(http, BANANA)]})
    assert listing["category"] == "Banana" and listing["description"]


def test_a_16_bit_png_is_listed_as_its_8_bit_original(sdk, http):
    # The old decoder clipped 16-bit levels to white: a milk carton became "Vegetables".
    with Image.open(QUERIES / "Arla-Standard-Milk_001.jpg") as img:
        grey = img.convert("L")
    sixteen = Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257)  # 0..255 -> 0..65535, mode I;16
    listings = []
    for image in (grey, sixteen):
        response = http.post("/ipl/photos", content=png(image), headers={"content-type": "image/png"})
        assert response.status_code == 201, response.text
        listings.append(sdk.runs.wait(None, "listing", input={"photos": [response.json()["photo"]]}))
    assert listings[1]["category"] == listings[0]["category"] != "Vegetables"
    assert listings[1]["category_confidence"] == pytest.approx(listings[0]["category_confidence"], abs=0.05)


def test_the_page_and_its_config_are_served(http):
    page = http.get("/ipl/")
    assert page.status_code == 200 and "runs/stream" in page.text
    config = http.get("/ipl/config").json()
    assert config["assistant_id"] == "listing" and config["context"] == {}  # a client sets no server knob
    assert config["limits"]["max_photos"] == 9 and config["limits"]["max_hint_chars"] == 2000


# In process: the same confirmation step with the graph compiled with its own checkpointer.

def test_routers_follow_the_confirm_flag_and_safety():
    assert route_after_extract_attributes(State(), runtime(Context(confirm=True))) == "confirm_attributes"
    assert route_after_extract_attributes(State(), runtime(Context())) == "fetch_template"
    assert route_after_confirm_attributes(State(safety=SafetyVerdict(safe=True))) == "fetch_template"
    assert route_after_confirm_attributes(State(safety=SafetyVerdict(safe=False))) == "__end__"


def test_confirm_in_process_keeps_or_edits(ctx):
    graph = builder.compile(checkpointer=InMemorySaver())
    context = Context(index_dir=ctx.index_dir, confirm=True)
    kept, edited = {"configurable": {"thread_id": "kept"}}, {"configurable": {"thread_id": "edited"}}
    for config in (kept, edited):
        paused = graph.invoke({"photos": PAIR}, config, context=context)
        assert paused["__interrupt__"][0].value["attributes"] == {"Brand": "Bravo"}
    as_is = graph.invoke(Command(resume={}), kept, context=context)
    assert as_is["attributes"] == {"Brand": "Bravo"} and as_is["evidence"]["Brand"] != "seller"
    changed = graph.invoke(Command(resume={"category": "Apple juice", "attributes": {"Brand": ""}}), edited,
                           context=context)
    assert changed["category"] == "Apple juice" and changed["category_confidence"] == 1.0
    assert "Brand" not in changed["attributes"]


def test_a_malformed_answer_is_a_user_error(ctx):
    from ipl_graph.errors import UserError

    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "bad"}}
    context = Context(index_dir=ctx.index_dir, confirm=True)
    graph.invoke({"photos": [str(BANANA)]}, config, context=context)
    with pytest.raises(UserError, match="confirm: attributes must map names to strings"):
        graph.invoke(Command(resume={"attributes": ["Brand"]}), config, context=context)


def test_serve_without_a_config_is_one_line(tmp_path, capsys):
    assert main(["serve", "--config", str(tmp_path / "langgraph.json")]) == 2
    assert "no such file" in capsys.readouterr().err
