"""An OpenAI-compatible stand-in for a model server: it replays recorded streaming chat completions
(SSE cassettes) on 127.0.0.1, or records them by passing requests through to a real server.

Tests and benchmarks use it in place of vLLM, SGLang or Ollama, so the `openai` generator is
exercised over real HTTP and the real SSE protocol without a model. A cassette is JSON:
{"note": ..., "interactions": [{"request": {"path", "model"}, "response": {"status", "events"}}]},
`events` being the `data:` payloads in order (JSON objects, and the final "[DONE]"). Replies are
matched on path and model name. Recording keeps no request headers (API keys) and no prompts or
photos, only what the match needs.

    python -m ipl_tools.generators.replay_server record --upstream http://127.0.0.1:8000 --out c.json
    python -m ipl_tools.generators.replay_server serve c.json      # then --base-url the printed URL
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class ReplayServer:
    """Serves a cassette (or records one from `upstream`) on 127.0.0.1 at a free port."""

    def __init__(self, cassette: str | Path | dict[str, Any] | None = None, upstream: str | None = None,
                 delay_s: float = 0.0, port: int = 0) -> None:
        if isinstance(cassette, str | Path):
            cassette = json.loads(Path(cassette).read_text(encoding="utf-8"))
        self.cassette: dict[str, Any] = cassette if isinstance(cassette, dict) else {"interactions": []}
        self.upstream = upstream.rstrip("/").removesuffix("/v1") if upstream else None  # the server's root
        self.delay_s = delay_s
        self.requests: list[dict[str, Any]] = []  # request bodies as received, for tests to inspect
        self.sent: list[int] = []  # events written per request before the reply ended or the client left
        self._http = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._http.daemon_threads = False  # stop() waits for replies in flight, so a recording is complete
        self._http.replay = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._http.serve_forever, name="ipl-replay-server", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def start(self) -> ReplayServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and wait for the replies in flight (idempotent)."""
        if self._thread.is_alive():
            self._http.shutdown()
            self._http.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def save(self, path: str | Path) -> None:
        """Write the cassette; after stop(), so every reply in flight is in it."""
        Path(path).write_text(json.dumps(self.cassette, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    def find(self, path: str, model: str | None) -> dict[str, Any] | None:
        return next((i for i in self.cassette["interactions"]
                     if i["request"]["path"] == path and i["request"].get("model") in (None, model)), None)


class _Handler(BaseHTTPRequestHandler):
    server_version = "ipl-replay/1"

    @property
    def replay(self) -> ReplayServer:
        return self.server.replay  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read results, not logs
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            models = sorted({i["request"].get("model") for i in self.replay.cassette["interactions"]} - {None})
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in models]})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self.replay.requests.append(body)
        if self.replay.upstream:
            self._record(body)
            return
        found = self.replay.find(self.path, body.get("model"))
        if found is None:
            self._json(404, {"error": {"message": f"no recorded reply for model {body.get('model')!r}"}})
            return
        status, events = found["response"]["status"], found["response"]["events"]
        if body.get("stream"):
            self._events(status, events, iter_delay=self.replay.delay_s)
        else:
            self._json(status, completion(events))

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _events(self, status: int, events: Any, iter_delay: float = 0.0) -> list[Any]:
        """Write `events` as SSE; returns those written (the client may leave early)."""
        self.send_response(status)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        written: list[Any] = []
        try:
            for event in events:
                data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
                self.wfile.write(f"data: {data}\n\n".encode())
                self.wfile.flush()
                written.append(event)
                if iter_delay:
                    time.sleep(iter_delay)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self.replay.sent.append(len(written))
        return written

    def _record(self, body: dict[str, Any]) -> None:
        import httpx

        headers = {"Content-Type": "application/json"}
        if self.headers.get("Authorization"):  # passed on, never stored
            headers["Authorization"] = self.headers["Authorization"]
        url = f"{self.replay.upstream}{self.path}"
        with httpx.stream("POST", url, json=body, headers=headers, timeout=600) as response:
            events = self._events(response.status_code, _sse_events(response.iter_lines()))
        self.replay.cassette["interactions"].append(
            {"request": {"path": self.path, "model": body.get("model")},
             "response": {"status": response.status_code, "events": events}}
        )


def completion(events: list[Any]) -> dict[str, Any]:
    """The non-streaming reply the recorded stream adds up to."""
    chunks = [e for e in events if isinstance(e, dict) and e.get("choices")]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    finish = next((r for c in reversed(chunks) if (r := c["choices"][0].get("finish_reason"))), "stop")
    first = chunks[0] if chunks else {}
    return {"id": first.get("id", "chatcmpl-replay"), "object": "chat.completion", "created": first.get("created", 0),
            "model": first.get("model", ""), "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}]}


def _sse_events(lines: Any) -> Any:
    for line in lines:
        if line.startswith("data:"):
            data = line[5:].strip()
            yield data if data == "[DONE]" else json.loads(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ipl_tools.generators.replay_server", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="replay a cassette")
    serve.add_argument("cassette")
    serve.add_argument("--delay", type=float, default=0.02, help="seconds between events")
    record = sub.add_parser("record", help="pass requests to a real server and record the replies")
    record.add_argument("--upstream", required=True, help="the real server's URL, e.g. http://127.0.0.1:8000/v1")
    record.add_argument("--out", required=True, help="cassette file to write on Ctrl-C")
    for p in (serve, record):
        p.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        server = ReplayServer(args.cassette, delay_s=args.delay, port=args.port)
    else:
        server = ReplayServer(upstream=args.upstream, port=args.port)
    with server:
        print(f"--base-url {server.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    if args.command == "record":
        server.save(args.out)


if __name__ == "__main__":
    main()
