"""A warm local worker for `ipl list`: the libraries and models load once, not on every command.

A listing takes a fraction of a second; importing LangGraph, Chroma and guardrails and loading the
OCR, nudity and image models takes seconds. The `ipl` command therefore sends `ipl list` to a worker
process over a Unix socket, and starts one when none answers. The user never sees it:

- started on demand, detached, one per (environment prefix, interpreter, IPL source, settings): code or settings
  that change get a new worker, never a stale one;
- one request at a time, each run as the command would run it here (the client's folder, its
  arguments, its stdout and stderr streamed back, its exit code): concurrent commands queue;
- an index another process changed (`ipl index`) since the worker read it: the worker hands the
  request back and exits, and the client starts a fresh one;
- gone after `IDLE_S` seconds without a request; a command that meets one on its way out, or
  that cannot start one, runs in its own process as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

IDLE_S = 300.0
"""Seconds without a request before the worker exits: long enough for a seller's session of
listings, short enough that ~0.5 GB is not held all day."""
START_S = 120.0
"""How long a client waits for a worker it started before listing in its own process."""
ENV_KEYS = ("HOME", "XDG_CACHE_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "ANONYMIZED_TELEMETRY", "PATH")
"""Environment a listing may read; a worker serves only clients that share it."""
RETRY = "retry"


def _source_stamp() -> str:
    """What the worker's code is: the newest modification of any IPL source, prompt or policy file."""
    import ipl_graph
    import ipl_tools

    newest = 0
    for package in (ipl_graph, ipl_tools):
        for root, _, files in os.walk(Path(str(package.__file__)).parent):
            newest = max([newest, *(os.stat(os.path.join(root, f)).st_mtime_ns for f in files)])
    for name in ("ipl_policies", "ipl_prompts"):
        with contextlib.suppress(ImportError, TypeError):
            spec = __import__(name)
            for folder in getattr(spec, "__path__", []):
                for f in os.listdir(folder):
                    newest = max(newest, os.stat(os.path.join(folder, f)).st_mtime_ns)
    return str(newest)


def folder() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "ipl" / "worker"


def socket_path() -> Path:
    """This interpreter's, this code's and this environment's worker socket."""
    from ipl_graph.taming import DEFAULTS  # the CLI sets these: the same worker with or without them

    env = {k: os.environ.get(k, DEFAULTS.get(k, "")) for k in ENV_KEYS}
    key = json.dumps([sys.prefix, os.path.realpath(sys.executable), _source_stamp(), env, os.getuid()])
    return folder() / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.sock"


# --- the client ----------------------------------------------------------------------------------


def run_list(argv: list[str], out: TextIO, err: TextIO) -> int | None:
    """Run `ipl list ARGV...` in the worker, starting one if needed; its exit code, or None when no
    worker could take it (the caller then lists in its own process)."""
    path = socket_path()
    for _ in range(3):
        conn = _connect(path) or _start(path)
        if conn is None:
            return None
        code = _request(conn, argv, out, err)
        if code is not None:
            return code
    return None


def _connect(path: Path) -> socket.socket | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    return conn


@contextlib.contextmanager
def _start_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _start(path: Path) -> socket.socket | None:
    """Start a worker (one client at a time does) and wait until it answers."""
    with _start_lock(path):
        conn = _connect(path)
        if conn is not None:
            return conn
        path.unlink(missing_ok=True)
        with open(path.with_suffix(".log"), "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ipl_graph.face.worker", str(path)], stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, start_new_session=True, close_fds=True,
            )
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline and proc.poll() is None:
            conn = _connect(path)
            if conn is not None:
                return conn
            time.sleep(0.05)
        return None


def _request(conn: socket.socket, argv: list[str], out: TextIO, err: TextIO) -> int | None:
    """Send one request, copy what comes back to out/err; the exit code, or None to try again."""
    with conn, conn.makefile("rwb") as stream:
        try:
            stream.write(json.dumps({"argv": argv, "cwd": os.getcwd()}).encode() + b"\n")
            stream.flush()
            for line in stream:
                message = json.loads(line)
                if "out" in message:
                    out.write(message["out"])
                    out.flush()
                elif "err" in message:
                    err.write(message["err"])
                    err.flush()
                elif message.get("rc") == RETRY:
                    return None
                else:
                    return int(message["rc"])
        except (OSError, ValueError):
            pass
    return None  # the worker went away before it began: nothing was run


def stop() -> bool:
    """Stop this environment's worker after its current request; whether one was running."""
    conn = _connect(socket_path())
    if conn is None:
        return False
    with conn:
        conn.sendall(b'{"stop": true}\n')
        conn.recv(1)  # closed when the worker leaves
    return True


# --- the worker ----------------------------------------------------------------------------------


class _Channel:
    """A text stream that sends each write to the client as one JSON line."""

    def __init__(self, stream: Any, key: str) -> None:
        self.stream, self.key = stream, key

    def write(self, text: str) -> int:
        if text:
            with contextlib.suppress(OSError):  # the client went away (Ctrl-C): finish quietly
                self.stream.write(json.dumps({self.key: text}).encode() + b"\n")
                self.stream.flush()
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class Worker:
    """Serves requests one at a time, as `ipl_graph.face.cli.main` would run them in the client's folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.last = time.monotonic()
        self.stamps: dict[str, tuple] = {}
        self.inode = -1

    def serve(self) -> None:
        warm()
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        server.bind(str(tmp))
        os.chmod(tmp, 0o600)
        server.listen(16)
        tmp.replace(self.path)  # clients see the socket only once the worker is warm
        self.inode = os.stat(self.path).st_ino
        threading.Thread(target=self._watch, daemon=True).start()
        while True:
            conn, _ = server.accept()
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _watch(self) -> None:
        while True:
            time.sleep(5)
            with self.lock:
                if time.monotonic() - self.last > IDLE_S:
                    self._exit()

    def _exit(self) -> None:
        """Leave, under the start lock so no client starts a worker in between; requests still
        queued get no answer and are sent again by their clients."""
        with _start_lock(self.path), contextlib.suppress(FileNotFoundError):
            if os.stat(self.path).st_ino == self.inode:
                self.path.unlink()
        os._exit(0)

    def _handle(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:
            request = json.loads(stream.readline() or b"{}")
            if request.get("stop"):
                with self.lock:
                    self._exit()
            if "argv" not in request:
                return
            with self.lock:
                if self._stale(request):
                    stream.write(json.dumps({"rc": RETRY}).encode() + b"\n")
                    stream.flush()
                    self._exit()
                code = self._run(request, stream)
                self._remember(request)
                self.last = time.monotonic()
            with contextlib.suppress(OSError):
                stream.write(json.dumps({"rc": code}).encode() + b"\n")
                stream.flush()

    def _run(self, request: dict[str, Any], stream: Any) -> int:
        from ipl_graph.face.cli import main

        out, err = _Channel(stream, "out"), _Channel(stream, "err")
        saved = sys.stdout, sys.stderr
        try:
            os.chdir(request["cwd"])
            sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
            return main(request["argv"], worker=False)
        except SystemExit as exc:  # argparse
            return exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # a traceback, as the command would print it
            import traceback

            err.write(traceback.format_exc())
            return 1
        finally:
            sys.stdout, sys.stderr = saved

    def _index_of(self, request: dict[str, Any]) -> str:
        argv = request["argv"]
        index = argv[argv.index("--index") + 1] if "--index" in argv[:-1] else ".ipl-index"
        return os.path.realpath(os.path.join(request["cwd"], index))

    def _stale(self, request: dict[str, Any]) -> bool:
        index = self._index_of(request)
        return index in self.stamps and self.stamps[index] != index_stamp(index)

    def _remember(self, request: dict[str, Any]) -> None:
        index = self._index_of(request)
        self.stamps[index] = index_stamp(index)


def index_stamp(index: str) -> tuple:
    """What changes when a process writes the index: its files' sizes and modification times."""
    stamps = []
    for root, _, files in os.walk(index):
        for name in sorted(files):
            if name.endswith(".lock"):
                continue
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(os.path.join(root, name))
                stamps.append((os.path.relpath(os.path.join(root, name), index), st.st_size, st.st_mtime_ns))
    return tuple(sorted(stamps))


def warm() -> None:
    """Import and load what a default listing uses, so the first request is as fast as the rest."""
    from ipl_graph import plugins, taming

    taming.apply()
    import ipl_graph.graph  # noqa: F401
    from ipl_tools import moderate_stream
    from ipl_tools.catalog.index import Catalog  # noqa: F401

    with contextlib.suppress(Exception):  # a backend that cannot load fails the request, as in-process
        for kind, name in [("ocr", "rapidocr"), ("nudity", "auto"), ("embedder", "efficientnet-lite0")]:
            plugins.get(kind, name)
        moderate_stream.guard()
        with taming.without(*taming.JSONSCHEMA_EXTRAS):
            import chromadb  # noqa: F401


def main() -> None:
    path = Path(sys.argv[1])
    worker = Worker(path)
    worker.serve()


if __name__ == "__main__":
    main()
