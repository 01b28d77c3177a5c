"""A warm local worker for `ipl list`: the libraries and models load once, not on every command.

A listing takes a fraction of a second; importing LangGraph, Chroma and guardrails and loading the
OCR, nudity and image models takes seconds. The `ipl` command therefore sends `ipl list` to a worker
process over a Unix socket, and starts one when none answers. The user never sees it:

- started on demand, detached, one per (environment prefix, interpreter, IPL source, settings): code or settings
  that change get a new worker, never a stale one; an `ipl index` at a terminal starts one that
  warms up on the index it wrote, so the first listing after it is a warm one too (IPL_WORKER=1:
  also without a terminal; IPL_WORKER=0: no worker at all);
- index and policy paths reach it whole (the client's folder joined), so folders whose indexes share
  a relative name (the default `.ipl-index`) each get their own;
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

from ipl_graph import taming

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
    # the CLI sets taming's defaults: the same worker with or without them
    env = {k: os.environ.get(k, taming.DEFAULTS.get(k, "")) for k in ENV_KEYS}
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
    """Start a worker (one client at a time does; one `ipl index` started is waited for) and wait
    until it answers."""
    with _start_lock(path):
        conn = _connect(path)
        if conn is not None:
            return conn
        pid = _starting(path) or _spawn(path)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline and _alive(pid):
            conn = _connect(path)
            if conn is not None:
                return conn
            time.sleep(0.01)  # a connect attempt is ~20 us: the listing starts as soon as the worker is warm
        return None


def _spawn(path: Path, *warm_args: str) -> int:
    """Start a worker detached (warming up first, with `warm_args`: index folder and embedder); its pid."""
    path.unlink(missing_ok=True)
    with open(path.with_suffix(".log"), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ipl_graph.face.worker", str(path), *warm_args], stdin=subprocess.DEVNULL,
            stdout=log, stderr=log, start_new_session=True, close_fds=True,
        )
    path.with_suffix(".pid").write_text(str(proc.pid))
    return proc.pid


def _starting(path: Path) -> int | None:
    """The pid of a worker started for `path` that is still warming up (not answering yet)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.with_suffix(".pid").read_text())
        if _alive(pid):
            return pid
    return None


def _alive(pid: int) -> bool:
    """Whether `pid` is a running worker (not another process that got its number, not a zombie)."""
    with contextlib.suppress(OSError):
        return b"ipl_graph.face.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    if Path("/proc").is_dir():
        return False
    try:  # no /proc (macOS): the pid alone
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def wanted() -> bool:
    """Whether `ipl list` goes through a worker: yes unless IPL_WORKER=0."""
    return os.environ.get("IPL_WORKER", "") != "0"


def start_after_index(index: str, embedder: str) -> None:
    """After `ipl index` wrote `index`: a fresh worker warms up on it in the background, so the
    listing that usually follows is a warm one. Only where someone is at a terminal (stderr), or
    with IPL_WORKER=1: scripts and test suites do not leave ~0.55 GB behind for minutes."""
    setting = os.environ.get("IPL_WORKER", "")
    if setting == "0" or (setting != "1" and not sys.stderr.isatty()):
        return
    path = socket_path()
    stop()  # a worker that read this index before would only hand the next request back
    with _start_lock(path):
        if _connect(path) is None and _starting(path) is None:
            _spawn(path, index, embedder)


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

    def serve(self, index: str | None = None, embedder: str = "efficientnet-lite0") -> None:
        taming.collector_paused()  # until the first listing is done: the warm one or the first request's
        warm(index, embedder)
        if index:
            taming.settle()
            self.stamps[os.path.realpath(index)] = index_stamp(index)
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
                taming.settle()
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


def warm(index: str | None = None, embedder: str = "efficientnet-lite0") -> None:
    """Import and load what a default listing uses, so the first request is as fast as the rest;
    given an index, list a generated photo from it (the catalog opened, every lazy load done)."""
    taming.apply()
    import ipl_graph.graph  # noqa: F401
    from ipl_tools import moderate_stream
    from ipl_tools.catalog.index import Catalog  # noqa: F401

    # ONNX Runtime builds a session's graph without holding the GIL: the models load beside the
    # imports below (~65 ms of a cold start on 2 cores, `scripts/bench_speed.py`)
    loading = threading.Thread(target=_load_models, args=(embedder,), name="ipl-warm-models", daemon=True)
    loading.start()
    with contextlib.suppress(Exception):  # a backend that cannot load fails the request, as in-process
        moderate_stream.guard()
        with taming.chromadb_imports():
            import chromadb  # noqa: F401
    loading.join()
    if index:
        with contextlib.suppress(Exception):
            _list_a_generated_photo(index, embedder)


def _load_models(embedder: str) -> None:
    from ipl_graph import plugins

    with contextlib.suppress(Exception):
        for kind, name in [("ocr", "rapidocr"), ("nudity", "auto"), ("embedder", embedder)]:
            plugins.get(kind, name)


def _list_a_generated_photo(index: str, embedder: str) -> None:
    import tempfile

    from PIL import Image

    from ipl_graph.context import Context
    from ipl_graph.graph import graph
    from ipl_graph.state import InputState

    with tempfile.TemporaryDirectory(prefix="ipl-warm-") as tmp:
        photo = Path(tmp) / "warm.jpg"
        Image.linear_gradient("L").convert("RGB").save(photo)
        graph.invoke(InputState(photos=[str(photo)]), context=Context(index_dir=index, embedder=embedder))


def main() -> None:
    path = Path(sys.argv[1])
    worker = Worker(path)
    worker.serve(*sys.argv[2:4])


if __name__ == "__main__":
    main()
