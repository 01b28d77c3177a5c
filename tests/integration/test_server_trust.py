"""A hostile client against the real `ipl serve` (issue #10): it cannot send the server's key where it
likes, read or probe the server's files, fetch URLs through it, skip the input checks on any route,
tie the one worker up with a huge hint, or fill the disk with refused uploads; and with a token,
nothing but the page's own HTML answers without it.

The server here runs with a token (given as IPL_TOKEN), an OPENAI_API_KEY to steal, and a photos
folder holding one real photo and two symlinks out of it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from helpers import QUERIES, ROOT, ipl_server
from ipl_graph.face.cli import main

TOKEN = "ipl-test-token-7f3a"
KEY = "sk-ipl-test-key-that-must-not-leave"
BANANA = QUERIES / "Banana_001.jpg"
REFUSED = "not an uploaded photo: upload it (POST /ipl/photos) or send it as a data URL"
THREAD = "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"
RUN_ROUTES = [f"/threads/{THREAD}/runs", f"/threads/{THREAD}/runs/stream", f"/threads/{THREAD}/runs/wait",
              "/runs", "/runs/stream", "/runs/wait", "/runs/batch", f"/threads/{THREAD}/runs/crons", "/runs/crons"]


class Listener:
    """A TCP port that records whoever connects: where a leaked key or an SSRF fetch would land."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(2)
            try:
                self.received.append(conn.recv(65536))
            except OSError:
                self.received.append(b"")
            conn.close()


@pytest.fixture(scope="module")
def photos_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    shutil.copy(BANANA, folder / "banana.jpg")
    (folder / "passwd.jpg").symlink_to("/etc/passwd")
    (folder / "juice.jpg").symlink_to(QUERIES / "Bravo-Apple-Juice_001.jpg")  # a real photo, outside
    return folder


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    listening = Listener()
    yield listening
    listening.sock.close()


@pytest.fixture(scope="module")
def server(sample_index, photos_dir, tmp_path_factory) -> Iterator[str]:
    env = {**os.environ, "IPL_TOKEN": TOKEN, "OPENAI_API_KEY": KEY}  # the child's, not this process's
    log_path = tmp_path_factory.mktemp("trust") / "server.log"
    with ipl_server(sample_index, log_path, "--photos-dir", str(photos_dir), env=env) as (url, log):
        yield url
        log.seek(0)
        assert "Traceback" not in log.read()  # every refusal above was a 4xx, not a crash


@pytest.fixture(scope="module")
def http(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=120, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


BANANA_URL = "data:image/jpeg;base64," + base64.b64encode(BANANA.read_bytes()).decode()


def run(photos: list[str] | None = None, hint: str = "", **fields) -> dict:
    """A run request; by default of a photo this server takes (a data URL)."""
    return {"assistant_id": "listing", "input": {"photos": photos or [BANANA_URL], "hint": hint}, **fields}


def post_run(http: httpx.Client, route: str, payload: dict) -> httpx.Response:
    body = [payload] if route == "/runs/batch" else payload
    if route.endswith("/crons"):
        body = {**payload, "schedule": "0 0 1 1 *"}
    return http.post(route, json=body)


def upload(http: httpx.Client, data: bytes) -> httpx.Response:
    return http.post("/ipl/photos", content=data, headers={"content-type": "image/jpeg"})


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.open(BANANA).convert("RGB").resize(size).save(buffer, "PNG")
    return buffer.getvalue()


# --- authentication --------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("GET", "/ipl/config"), ("POST", "/ipl/photos"), ("POST", "/threads"), ("POST", "/runs/wait"),
    ("POST", "/runs/batch"), ("POST", "/threads/search"), ("GET", f"/threads/{THREAD}/state"),
    ("POST", "/assistants/search"),
])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN},
                                     {"x-auth-scheme": "langsmith"}],
                         ids=["none", "wrong", "no-scheme", "studio-scheme"])
def test_without_the_token_nothing_but_the_page_answers(server, method, path, headers):
    response = httpx.request(method, server + path, headers=headers, json=run(["/etc/passwd"]), timeout=30)
    assert response.status_code == 401, response.text
    assert "passwd" not in response.text and "photo" not in response.text  # refused before any check


def test_the_page_itself_and_the_health_check_need_no_token(server, http):
    assert httpx.get(f"{server}/ipl/").status_code == 200  # the page asks for the token itself
    assert httpx.get(f"{server}/ok").status_code == 200
    assert http.get("/ipl/config").status_code == 200


def test_a_token_is_required_off_loopback(capsys):
    assert main(["serve", "--host", "0.0.0.0", "--config", str(ROOT / "langgraph.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("ipl: error: --host 0.0.0.0 is reachable from other machines: set an access token"
                   " (--token or IPL_TOKEN)")


# --- the server's configuration stays the server's --------------------------------------------------

@pytest.mark.parametrize("context", [
    {"generator": "openai", "model": "gpt", "base_url": "http://127.0.0.1:{port}/v1"},
    {"base_url": "http://127.0.0.1:{port}/v1"},
    {"policy": "/etc/passwd"}, {"policy": "/nonexistent/policy.yaml"}, {"index_dir": "/"},
    {"embedder": "x"}, {"confirm": "yes"}, {"nonsense": 1},
])
def test_a_client_cannot_set_the_servers_knobs(http, listener, context):
    context = {k: v.format(port=listener.port) if isinstance(v, str) else v for k, v in context.items()}
    response = http.post("/runs/wait", json=run(context=context))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("context.") and "\n" not in detail
    if "policy" in context:  # the same words whether the file exists or not
        assert detail == "context.policy: set by the server (ipl serve), not by a request"
    assert listener.received == []


@pytest.mark.parametrize("payload", [
    {"config": {"configurable": {"base_url": "http://127.0.0.1:{port}/v1", "generator": "openai"}}},
    {"webhook": "http://127.0.0.1:{port}/hook"},
    {"command": {"goto": "generate", "update": {"photos": ["/etc/passwd"]}}, "input": None},
    {"checkpoint": {"thread_id": THREAD, "base_url": "http://127.0.0.1:{port}"}},
    {"langsmith_tracer": {"project_name": "x"}},
], ids=["configurable", "webhook", "command-update", "checkpoint-extra", "tracer"])
def test_a_run_cannot_smuggle_configuration_or_state(http, listener, payload):
    payload = json.loads(json.dumps(payload).replace("{port}", str(listener.port)))
    response = http.post("/runs/wait", json={**run(), **payload})
    assert response.status_code == 422, response.text
    time.sleep(0.2)
    assert listener.received == []


def test_assistants_cannot_be_made_to_carry_a_context(http, listener):
    response = http.post("/assistants", json={"graph_id": "listing", "context": {
        "generator": "openai", "base_url": f"http://127.0.0.1:{listener.port}/v1"}})
    assert response.status_code == 403
    system = http.post("/assistants/search", json={"graph_id": "listing"}).json()[0]["assistant_id"]
    assert http.patch(f"/assistants/{system}", json={"context": {"generator": "openai"}}).status_code == 403


@pytest.mark.parametrize("method, path", [
    ("POST", "/internal/truncate"), ("POST", "/mcp"), ("POST", "/a2a/listing"), ("PUT", "/store/items"),
    ("POST", f"/threads/{THREAD}/commands"),
])
def test_routes_that_bypass_the_checks_are_closed(http, method, path):
    assert http.request(method, path, json={}).status_code == 404


# --- photos: uploads, data URLs and the operator's folder only ----------------------------------------

def refused(http: httpx.Client, ref: str) -> httpx.Response:
    response = http.post("/runs/wait", json=run([ref]))
    assert response.status_code == 422, (ref, response.text)
    return response


@pytest.mark.parametrize("ref", [
    "/etc/passwd", "/etc/hostname", "/nonexistent/photo.jpg", str(QUERIES / "Banana_001.jpg"), str(ROOT / "README.md"),
    "photos/banana.jpg", "~/.bashrc", "file:///etc/passwd", "http://127.0.0.1:{port}/x.jpg",
    "https://example.com/x.jpg", "{dir}/passwd.jpg", "{dir}/juice.jpg", "{dir}/../photos/passwd.jpg",
    "{dir}/missing.jpg", "/proc/self/environ", "{dir}",
])
def test_server_paths_and_urls_get_one_answer_whether_or_not_they_exist(http, listener, photos_dir, ref):
    ref = ref.format(port=listener.port, dir=photos_dir)
    assert refused(http, ref).json()["detail"] == f"input.photos[0]: {REFUSED}"
    assert listener.received == []


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(ref=st.one_of(
    st.text(min_size=1, max_size=200).filter(lambda s: not s.startswith("data:")),
    st.builds("/{}".format, st.text(max_size=80)),
    st.builds("http://127.0.0.1:{}/{}".format, st.integers(1, 65535), st.text(max_size=40)),
    st.builds("{}://{}".format, st.sampled_from(["http", "https", "ftp", "file", "gopher"]), st.text(max_size=60)),
))
def test_any_generated_path_or_url_is_refused_with_the_same_message(http, ref):
    assert refused(http, ref).json()["detail"] == f"input.photos[0]: {REFUSED}"


def test_a_photo_in_the_operators_folder_is_listed(http, photos_dir):
    listing = http.post("/runs/wait", json=run([str(photos_dir / "banana.jpg")]))
    assert listing.status_code == 200 and listing.json()["category"] == "Banana"


def test_an_iphone_heic_photo_is_listed(http):
    from pillow_heif import register_heif_opener

    register_heif_opener()
    heic = io.BytesIO()
    Image.open(QUERIES / "Arla-Standard-Milk_001.jpg").save(heic, format="HEIF", quality=90)
    stored = upload(http, heic.getvalue())
    assert stored.status_code == 201, stored.text  # the old server: "not a readable image"
    listing = http.post("/runs/wait", json=run([stored.json()["photo"]])).json()
    assert listing["category"] == "Milk" and listing["attributes"].get("Brand") == "Arla"


def test_the_state_of_a_run_holds_only_store_paths_and_no_server_file(http):
    stored = upload(http, BANANA.read_bytes()).json()["photo"]
    inline = "data:image/jpeg;base64," + base64.b64encode((QUERIES / "Bravo-Apple-Juice_001.jpg").read_bytes()).decode()
    thread = http.post("/threads", json={}).json()["thread_id"]
    done = http.post(f"/threads/{thread}/runs/wait", json=run([stored, inline]))
    assert done.status_code == 200, done.text
    photos = http.get(f"/threads/{thread}/state").json()["values"]["photos"]
    store = Path(stored).parent
    assert all(Path(p).parent == store for p in photos)
    assert store != Path.home() / ".cache" / "ipl" / "photos"  # this server's own store


# --- every route that makes a run checks its input ----------------------------------------------------

BAD_INPUTS = [
    ({"photos": ["/etc/passwd"]}, f"input.photos[0]: {REFUSED}"),
    ({"photos": [str(BANANA)], "lang": "fr"}, "input.lang: Input should be 'en' or 'zh'"),
    ({"photos": [str(BANANA)], "hint": {"a": 1}}, "input.hint: Input should be a valid string"),
    ({"hint": "x"}, "input.photos: Field required"),
    ({"photos": []}, "input.photos: no photos given"),
    ({"photos": [str(BANANA)], "hint": "x" * 2001}, "input.hint: 2001 characters is over the limit of 2000"),
    ({"photos": [str(BANANA)], "images": [{"path": "/etc/passwd"}]}, "input.images: Extra inputs are not permitted"),
]


@pytest.mark.parametrize("route", RUN_ROUTES)
@pytest.mark.parametrize("given_input, message", BAD_INPUTS,
                         ids=["passwd", "lang-fr", "hint-object", "no-photos", "empty", "long-hint", "extra-key"])
def test_every_route_that_makes_a_run_checks_its_input(http, route, given_input, message):
    response = post_run(http, route, {"assistant_id": "listing", "input": given_input})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail == (f"runs[0].{message}" if route == "/runs/batch" else message)


def test_a_cron_cannot_be_patched_to_read_a_server_file(http):
    response = http.patch(f"/runs/crons/{THREAD}", json={"input": {"photos": ["/etc/passwd"]}})
    assert response.status_code == 422 and REFUSED in response.json()["detail"]


def test_a_one_megabyte_hint_is_refused_at_once_and_the_server_keeps_serving(http):
    started = time.monotonic()
    response = http.post("/runs/wait", json=run(hint="unopened " * 120_000))
    assert response.status_code == 422 and "over the limit of 2000" in response.json()["detail"]
    assert time.monotonic() - started < 5
    assert http.get("/ok").status_code == 200


@pytest.mark.parametrize("resume, message", [
    ({"attributes": {"Brand": "x" * 600}}, "command.resume.attributes.Brand"),
    ({"attributes": {f"k{i}": "v" for i in range(60)}}, "command.resume.attributes"),
    ({"attributes": {"Brand": {"nested": "x"}}}, "command.resume.attributes.Brand"),
    ({"category": "x" * 600}, "command.resume.category"),
    ({"photos": ["/etc/passwd"]}, "command.resume.photos"),
])
def test_resume_edits_are_bounded_strings(http, resume, message):
    command = {"assistant_id": "listing", "command": {"resume": resume}}
    response = http.post(f"/threads/{THREAD}/runs/wait", json=command)
    assert response.status_code == 422 and response.json()["detail"].startswith(message), response.text


@pytest.mark.parametrize("payload, message", [
    ({"values": {"photos": ["/etc/passwd"]}}, "values.photos: Extra inputs are not permitted"),
    ({"values": {"images": [{"path": "/etc/passwd", "sha256": "0"}]}, "as_node": "check_safety"}, "as_node"),
    ({"values": {"title": "x" * 20_000}, "as_node": "score_quality"}, "values.title"),
    ({"values": {"description": "Like new. W e C h a t: seller_88"}, "as_node": "score_quality"},
     "values.description: contact details (messenger id)"),
    ({"values": {"attributes": {"Brand": "Arla ｔ.ｍｅ/milk_seller"}}, "as_node": "score_quality"},
     "values.attributes.Brand: contact details (link)"),
    ({"values": {"title": "Milk, call one three eight zero zero one three eight zero zero"},
      "as_node": "score_quality"},
     "values.title: contact details (phone number)"),
])
def test_thread_state_takes_only_the_sellers_edits(http, payload, message):
    response = http.post(f"/threads/{THREAD}/state", json=payload)
    assert response.status_code == 422 and response.json()["detail"].startswith(message), response.text


def test_a_thread_cannot_be_created_with_state(http):
    response = http.post("/threads", json={"supersteps": [{"updates": [
        {"values": {"photos": ["/etc/passwd"]}, "as_node": "__start__"}]}]})
    assert response.status_code == 422 and response.json()["detail"].startswith("supersteps")


# --- refused uploads leave nothing behind --------------------------------------------------------------

def test_refused_uploads_and_data_urls_leave_no_file(http):
    store = Path(upload(http, BANANA.read_bytes()).json()["photo"]).parent
    before = sorted(store.iterdir())
    whole = BANANA.read_bytes()
    for bad in (b"not a photo at all", whole[: len(whole) // 2], png((1, 1)), png((20, 400))):
        assert upload(http, bad).status_code == 422
        inline = "data:image/png;base64," + base64.b64encode(bad).decode()
        assert http.post("/runs/wait", json=run([inline])).status_code == 422
    assert sorted(store.iterdir()) == before
