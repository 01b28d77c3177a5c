"""The seller's routes, mounted into the LangGraph server through langgraph.json `http.app`.

GET /ipl/ is the seller page; GET /ipl/config tells it the graph, the run context and the limits;
POST /ipl/photos stores one photo (the request body, an image) content-addressed and answers its
path. A middleware checks the photos of every new run before the server takes it: at most the
policy's number, each a readable image within the limits, and data URLs stored as files, so graph
state holds paths, never image bytes. A bad request gets a 4xx with {"detail": one line}.

`ipl serve --index DIR` sets IPL_INDEX_DIR for the server: runs that name no `index_dir` in their
context get it.
"""

from __future__ import annotations

import json
import os
import re
from importlib import resources
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ipl_graph.errors import PhotoError
from ipl_graph.policies import Limits, load_policy

GRAPH = "listing"
INDEX_ENV = "IPL_INDEX_DIR"
RUN_PATH = re.compile(r"(/threads/[^/]+)?/runs(/stream|/wait)?")


class Refused(Exception):
    """A request the server turns down: an HTTP status and one line for the client."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def limits() -> Limits:
    return load_policy().limits


def served_index() -> str | None:
    return os.environ.get(INDEX_ENV) or None


def store_photo(data: bytes, label: str) -> dict[str, Any]:
    """Check and store one photo's bytes; its path and facts, or Refused."""
    from ipl_tools.photos import resolve, store_bytes

    lim = limits()
    if len(data) > lim.max_photo_bytes:
        raise Refused(413, f"{label}: {len(data) / 1e6:.1f} MB is over the {lim.max_photo_bytes / 1e6:.0f} MB limit")
    try:
        photo = resolve(str(store_bytes(data, lim, label)), lim)
    except PhotoError as exc:
        raise Refused(422, str(exc)) from None
    return {"photo": photo.path, "sha256": photo.sha256, "width": photo.width, "height": photo.height,
            "bytes": len(data)}


def check_photos(refs: Any) -> list[str]:
    """The run's photo references as checked local paths (data URLs stored), or Refused."""
    from ipl_tools.photos import resolve

    lim = limits()
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise Refused(422, "photos: a list of paths, URLs or data URLs")
    if not refs:
        raise Refused(422, "photos: no photos given")
    if len(refs) > lim.max_photos:
        raise Refused(422, f"photos: {len(refs)} photos is over the limit of {lim.max_photos}")
    paths = []
    for ref in refs:
        if ref.startswith("data:") and len(ref) * 3 // 4 > lim.max_photo_bytes + 1024:
            raise Refused(413, f"data URL: {len(ref) * 3 / 4e6:.1f} MB is over the {lim.max_photo_bytes / 1e6:.0f} MB"
                               " limit")
        try:
            paths.append(resolve(ref, lim).path)
        except PhotoError as exc:
            raise Refused(422, str(exc)) from None
    return paths


def check_run(payload: Any) -> Any:
    """A run request with its photos checked and stored, and the served index as default context."""
    if not isinstance(payload, dict):
        return payload
    run = dict(payload)
    if isinstance(run.get("input"), dict) and "photos" in run["input"]:
        run["input"] = {**run["input"], "photos": check_photos(run["input"]["photos"])}
    context = run.get("context")
    if served_index() and (context is None or isinstance(context, dict)) and not (context or {}).get("index_dir"):
        run["context"] = {**(context or {}), "index_dir": served_index()}
    return run


class CheckRuns:
    """ASGI middleware: new runs pass `check_run` before the LangGraph server sees them."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not RUN_PATH.fullmatch(scope["path"]):
            await self.app(scope, receive, send)
            return
        lim = limits()
        try:
            body = await read_body(scope, receive, lim.max_photos * (lim.max_photo_bytes * 4 // 3 + 1024) + (1 << 20))
            payload = json.loads(body) if body else None
        except Refused as exc:
            await refuse(exc, scope, receive, send)
            return
        except ValueError:  # not JSON: the server's own validation answers
            payload = None
        if payload is not None:
            try:
                body = json.dumps(await run_in_threadpool(check_run, payload)).encode()
            except Refused as exc:
                await refuse(exc, scope, receive, send)
                return
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(body)).encode())]}
        await self.app(scope, replay(body, receive), send)


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


async def upload_photo(request: Request) -> Response:
    lim = limits()
    label = unquote(request.headers.get("x-filename", ""))[:100] or "upload"
    try:
        data = await read_body(request.scope, request.receive, lim.max_photo_bytes, label)
        stored = await run_in_threadpool(store_photo, data, label)
    except Refused as exc:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)
    return JSONResponse(stored, status_code=201)


def config(request: Request) -> Response:
    lim = limits()
    context = {"index_dir": served_index()} if served_index() else {}
    return JSONResponse({
        "assistant_id": GRAPH, "context": context,
        "limits": {"max_photos": lim.max_photos, "max_photo_bytes": lim.max_photo_bytes},
    })


def to_page(request: Request) -> Response:
    return RedirectResponse("/ipl/")


def page(request: Request) -> Response:
    return HTMLResponse(resources.files("ipl_graph").joinpath("seller.html").read_text(encoding="utf-8"))


app = Starlette(
    routes=[
        Route("/ipl", to_page),
        Route("/ipl/", page),
        Route("/ipl/config", config),
        Route("/ipl/photos", upload_photo, methods=["POST"]),
    ],
    middleware=[Middleware(CheckRuns)],
)
