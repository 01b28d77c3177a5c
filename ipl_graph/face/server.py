"""The seller's routes and the server's trust boundary, mounted into the LangGraph server through
langgraph.json `http.app`.

GET /ipl/ is the seller page; GET /ipl/config tells it the graph and the limits; POST /ipl/photos
stores one photo (the request body, an image) in this server's photo store and answers its path.

`CheckRuns` stands in front of the LangGraph API; every request that creates a run or writes a
thread's state passes it, whatever the route (threads and stateless runs, /runs/batch, crons):
- the run's context is the server's (`ipl serve` flags, passed as IPL_* environment variables);
  a client chooses only `confirm`, and naming anything else is a 4xx;
- the input is {photos, hint, lang} and nothing else: photos are uploads (paths in the store),
  data URLs (stored) or files under `--photos-dir`; every other path or URL gets the same refusal,
  whether or not it exists; the hint is bounded by the policy; lang is one the graph writes;
- a resume carries only bounded seller edits; webhooks, graph configuration, state writes other
  than the seller's edits of the finished listing are refused.
A refused request gets a 4xx with {"detail": one line}. Authentication is ipl_graph/face/auth.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import tempfile
from collections.abc import AsyncIterator
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ipl_graph.context import Context
from ipl_graph.errors import PhotoError
from ipl_graph.face.serve import CONTEXT_ENV, PHOTOS_DIR_ENV, STORE_ENV
from ipl_graph.policies import Limits, load_policy

GRAPH = "listing"
LAST_NODE = "score_quality"
"""The graph's last node: the seller's saved edits are written as its output."""
SAFE_CONTEXT = {"confirm"}  # all a client may choose of the Context
RUN_KEYS = {  # what a run request may carry besides input, command, context and config
    "assistant_id", "metadata", "stream_mode", "stream_subgraphs", "stream_resumable", "on_disconnect",
    "multitask_strategy", "if_not_exists", "on_completion", "checkpoint", "checkpoint_id", "checkpoint_during",
    "durability", "interrupt_before", "interrupt_after", "feedback_keys", "strict_resume",
}
CRON_KEYS = {"schedule", "end_time", "enabled", "on_run_completed", "timezone"}
MAX_BATCH = 16  # runs in one /runs/batch: each is a full listing's work
EDIT_CHARS = 500  # a category, attribute name or value the seller types; longer is no edit, it is a payload
MAX_EDITS = 50  # attributes in one edit; the richest template has 12
TEXT_CHARS = 10_000  # a title or description the seller saves (the policy trims what the graph writes)
OK_PATHS = re.compile(r"/threads/[^/]+/runs(/stream|/wait|/crons)?|/runs(/stream|/wait|/batch|/crons)?")
CLOSED = re.compile(r"/internal(/.*)?|/mcp(/.*)?|/a2a(/.*)?|/store(/.*)?|/threads/[^/]+/(commands|stream/events)")

Text = Annotated[str, StringConstraints(max_length=EDIT_CHARS)]


class Refused(Exception):
    """A request the server turns down: an HTTP status and one line for the client."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


class RunInput(BaseModel):
    """What a run takes in (the graph's InputState); lengths are checked against the policy."""

    model_config = ConfigDict(extra="forbid", strict=True)
    photos: list[str]
    hint: str = ""
    lang: Literal["en", "zh"] = "en"


class Edits(BaseModel):
    """A seller's answer to the confirmation step (tools/confirm_attributes.py reads its meaning)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    category: Text | None = None
    attributes: dict[Text, Text | None] | None = Field(default=None, max_length=MAX_EDITS)


class RunCommand(BaseModel):
    """A resume, and nothing else: `goto` and `update` would write graph state directly."""

    model_config = ConfigDict(extra="forbid", strict=True)
    resume: Edits | None = None


class ListingEdit(BaseModel):
    """What the seller page saves to a finished listing: its text and details, nothing the graph reads."""

    model_config = ConfigDict(extra="forbid", strict=True)
    title: Annotated[str, StringConstraints(max_length=TEXT_CHARS)] | None = None
    description: Annotated[str, StringConstraints(max_length=TEXT_CHARS)] | None = None
    attributes: dict[Text, Text] | None = Field(default=None, max_length=MAX_EDITS)
    evidence: dict[Text, Text] | None = Field(default=None, max_length=MAX_EDITS)


# --- the server's configuration -------------------------------------------------------------------

def server_context() -> dict[str, Any]:
    """Every Context field as this server runs it: `ipl serve` flags, else the defaults."""
    chosen: dict[str, Any] = {field: os.environ[env] for field, env in CONTEXT_ENV.items() if os.environ.get(env)}
    return dataclasses.asdict(Context(**chosen))


def limits() -> Limits:
    return load_policy(server_context()["policy"]).limits


def served_index() -> str:
    return str(server_context()["index_dir"])


@lru_cache(maxsize=1)
def photo_store() -> Path:
    """This server's own photo store, and from now on the only folders photos are read from."""
    from ipl_tools import photos

    store = Path(os.environ.get(STORE_ENV) or tempfile.mkdtemp(prefix="ipl-photos-"))
    extra = [Path(os.environ[PHOTOS_DIR_ENV])] if os.environ.get(PHOTOS_DIR_ENV) else []
    photos.confine(store, *extra)
    return store


# --- checks ----------------------------------------------------------------------------------------

def one_line(exc: ValidationError, prefix: str) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
    return f"{where}: {first['msg']}"


def store_photo(data: bytes, label: str) -> dict[str, Any]:
    """Check and store one photo's bytes; its path and facts, or Refused."""
    from ipl_tools.photos import resolve, store_bytes

    lim = limits()
    try:
        photo = resolve(str(store_bytes(data, lim, label, photo_store())), lim)
    except PhotoError as exc:
        raise Refused(413 if "MB is over" in str(exc) else 422, str(exc)) from None
    return {"photo": photo.path, "sha256": photo.sha256, "width": photo.width, "height": photo.height,
            "bytes": len(data)}


def check_photos(refs: list[str], lim: Limits) -> list[str]:
    """The run's photo references as checked paths in the store or the photos folder, or Refused."""
    from ipl_tools.photos import resolve

    photo_store()
    if not refs:
        raise Refused(422, "input.photos: no photos given")
    if len(refs) > lim.max_photos:
        raise Refused(422, f"input.photos: {len(refs)} photos is over the limit of {lim.max_photos}")
    paths = []
    for i, ref in enumerate(refs):
        if ref.startswith("data:") and len(ref) * 3 // 4 > lim.max_photo_bytes + 1024:
            raise Refused(413, f"input.photos[{i}]: data URL: {len(ref) * 3 / 4e6:.1f} MB is over the"
                               f" {lim.max_photo_bytes / 1e6:.0f} MB limit")
        try:
            paths.append(resolve(ref, lim).path)
        except PhotoError as exc:
            raise Refused(422, f"input.photos[{i}]: {exc}") from None
    return paths


def check_input(raw: Any, lim: Limits) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Refused(422, "input: an object {photos, hint, lang} is required")
    try:
        given = RunInput.model_validate(raw)
    except ValidationError as exc:
        raise Refused(422, one_line(exc, "input")) from None
    if len(given.hint) > lim.max_hint_chars:
        raise Refused(422, f"input.hint: {len(given.hint)} characters is over the limit of {lim.max_hint_chars}")
    return {**given.model_dump(), "photos": check_photos(given.photos, lim)}


def check_command(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict) and raw.get("resume") is True:  # "keep it all", as {} says
        raw = {**raw, "resume": {}}
    try:
        command = RunCommand.model_validate(raw)
    except ValidationError as exc:
        raise Refused(422, one_line(exc, "command")) from None
    return {"resume": command.resume.model_dump(exclude_unset=True) if command.resume else None}


def check_context(raw: Any) -> dict[str, Any]:
    """The server's context with the client's safe choices; naming anything else is refused."""
    given = raw or {}
    if not isinstance(given, dict):
        raise Refused(422, "context: an object is required")
    fields = {f.name for f in dataclasses.fields(Context)}
    for key in given:
        if key not in SAFE_CONTEXT:
            why = "set by the server (ipl serve), not by a request" if key in fields else "unknown key"
            raise Refused(422, f"context.{str(key)[:60]}: {why}")
    if not isinstance(given.get("confirm", False), bool):
        raise Refused(422, "context.confirm: true or false")
    return server_context() | {"confirm": given.get("confirm", False)}


def check_run(payload: Any, cron: bool = False, patch: bool = False) -> dict[str, Any]:
    """A run request as the server takes it: checked input or resume, the server's context."""
    if not isinstance(payload, dict):
        raise Refused(422, "request body: a JSON object is required")
    for key in payload:
        if key not in RUN_KEYS | {"input", "command", "context", "config"} | (CRON_KEYS if cron else set()):
            raise Refused(422, f"{str(key)[:60]}: not accepted by this server")
    if payload.get("config"):
        raise Refused(422, "config: not accepted; the server configures its runs (use context.confirm)")
    checkpoint = payload.get("checkpoint")
    if checkpoint is not None and not (isinstance(checkpoint, dict) and set(checkpoint) <= {"checkpoint_id",
                                                                                           "checkpoint_ns"}):
        raise Refused(422, "checkpoint: only checkpoint_id and checkpoint_ns")
    run = {k: v for k, v in payload.items() if k != "config"}
    if "context" in payload or not patch:
        run["context"] = check_context(payload.get("context"))
    if payload.get("command") is not None:
        if payload.get("input") is not None:
            raise Refused(422, "input: give either input or command, not both")
        run["command"] = check_command(payload["command"])
    elif "input" in payload or not patch:
        run["input"] = check_input(payload.get("input"), limits())
    return run


def check_batch(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, list) or not payload:
        raise Refused(422, "request body: a list of runs is required")
    if len(payload) > MAX_BATCH:
        raise Refused(422, f"request body: {len(payload)} runs is over the limit of {MAX_BATCH}")
    runs = []
    for i, run in enumerate(payload):
        try:
            runs.append(check_run(run))
        except Refused as exc:
            raise Refused(exc.status, f"runs[{i}].{exc.detail}") from None
    return runs


def check_state_update(payload: Any) -> dict[str, Any]:
    """A thread state write: only the seller's edits of a finished listing's text and details."""
    if not isinstance(payload, dict) or set(payload) - {"values", "as_node", "checkpoint", "checkpoint_id"}:
        raise Refused(422, "request body: {values, as_node} with the listing's title, description, attributes")
    if payload.get("as_node") not in (None, LAST_NODE):
        raise Refused(422, f"as_node: only the finished listing ({LAST_NODE}) is edited")
    try:
        edit = ListingEdit.model_validate(payload.get("values"))
    except ValidationError as exc:
        raise Refused(422, one_line(exc, "values")) from None
    if reason := edit_problem(edit):
        raise Refused(422, reason)
    return payload


def edit_problem(edit: ListingEdit) -> str | None:
    """Why the seller's saved text may not be published (the trust boundary's rules), or None."""
    from ipl_tools import trust

    policy = load_policy(server_context()["policy"])
    texts = {"values.title": edit.title or "", "values.description": edit.description or ""}
    texts |= {f"values.attributes.{k}": f"{k}: {v}" for k, v in (edit.attributes or {}).items()}
    for where, text in texts.items():
        if reason := trust.problem(text, policy):
            return f"{where}: {reason}; remove it to save the listing"
    return None


def check_request(method: str, path: str, payload: Any) -> Any:
    """The checked request body for a route that creates runs or writes state; else the payload."""
    if path == "/runs/batch":
        return check_batch(payload)
    if method == "PATCH":
        return check_run(payload, cron=True, patch=True)
    if path.endswith("/state"):
        return check_state_update(payload)
    if path == "/threads":
        if isinstance(payload, dict) and payload.get("supersteps"):
            raise Refused(422, "supersteps: not accepted; a thread's state comes from its runs")
        return payload
    return check_run(payload, cron=path.endswith("/crons"))


def checked_route(method: str, path: str) -> bool:
    if method == "POST":
        return bool(OK_PATHS.fullmatch(path) or path == "/threads" or re.fullmatch(r"/threads/[^/]+/state", path))
    return method == "PATCH" and bool(re.fullmatch(r"/runs/crons/[^/]+", path))


# --- the middleware ---------------------------------------------------------------------------------

class CheckRuns:
    """ASGI middleware: requests that create runs or write state pass `check_request` first."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # this server streams over SSE only
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = re.sub("/+", "/", scope["path"]).rstrip("/") or "/"  # as the router would see it
        if CLOSED.fullmatch(path):
            await refuse(Refused(404, "not found"), scope, receive, send)
            return
        if not checked_route(scope["method"], path):
            await self.app(scope, receive, send)
            return
        try:
            body = await read_body(scope, receive, body_limit(limits()))
            try:
                payload = json.loads(body)
            except ValueError:
                raise Refused(422, "request body: not JSON") from None
            body = json.dumps(await run_in_threadpool(check_request, scope["method"], path, payload)).encode()
        except Refused as exc:
            await refuse(exc, scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-length", b"content-encoding")]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        await self.app(scope, replay(body, receive), send)


def body_limit(lim: Limits) -> int:
    """The most a run request needs: every photo inline as a data URL, and 1 MB for the rest."""
    return lim.max_photos * (lim.max_photo_bytes * 4 // 3 + 1024) + (1 << 20)


async def read_body(scope: Scope, receive: Receive, limit: int, label: str = "request body") -> bytes:
    """The request body, or Refused(413) as soon as it is over `limit` bytes."""
    declared = dict(scope["headers"]).get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"{label}: {int(declared) / 1e6:.1f} MB is over the {limit / 1e6:.0f} MB limit")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"{label}: over the {limit / 1e6:.0f} MB limit")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return again


async def refuse(exc: Refused, scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"detail": exc.detail}, status_code=exc.status)(scope, receive, send)


# --- the seller's routes ------------------------------------------------------------------------------

async def upload_photo(request: Request) -> Response:
    from urllib.parse import unquote

    lim = limits()
    label = unquote(request.headers.get("x-filename", ""))[:100] or "upload"
    label = re.sub(r"[\x00-\x1f\x7f]", "", label) or "upload"  # a name is shown, never interpreted
    try:
        data = await read_body(request.scope, request.receive, lim.max_photo_bytes, label)
        stored = await run_in_threadpool(store_photo, data, label)
    except Refused as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)
    return JSONResponse(stored, status_code=201)


def config(request: Request) -> Response:
    lim = limits()
    return JSONResponse({
        "assistant_id": GRAPH, "context": {},
        "limits": {"max_photos": lim.max_photos, "max_photo_bytes": lim.max_photo_bytes,
                   "max_hint_chars": lim.max_hint_chars, "min_photo_side": lim.min_photo_side},
    })


def to_page(request: Request) -> Response:
    return RedirectResponse("/ipl/")


def page(request: Request) -> Response:
    return HTMLResponse(resources.files("ipl_graph.face").joinpath("seller.html").read_text(encoding="utf-8"))


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    photo_store()  # confine this server's photo reading before the first request, not at import
    yield


app = Starlette(
    lifespan=lifespan,
    routes=[
        Route("/ipl", to_page),
        Route("/ipl/", page),
        Route("/ipl/config", config),
        Route("/ipl/photos", upload_photo, methods=["POST"]),
    ],
    middleware=[Middleware(CheckRuns)],
)
