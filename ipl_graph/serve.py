"""`ipl serve`: the LangGraph server for langgraph.json, offline, on loopback.

It runs `langgraph dev --no-browser --no-reload` (the in-memory server: threads, runs, streaming and a
checkpointer for the confirmation step) with the settings that keep it from calling home. It runs in
a temporary folder, where the dev server keeps its files, so nothing outlives it: photo paths sent to
it should be absolute. `running()` starts one for tests and scripts and always stops it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ipl_graph import offline
from ipl_graph.errors import UserError
from ipl_graph.server import INDEX_ENV

HOST = "127.0.0.1"


def command(config: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "langgraph_cli", "dev", "--no-browser", "--no-reload", "--host", HOST,
            "--port", str(port), "--config", str(config), "--server-log-level", "WARNING"]


def environment(index: str) -> dict[str, str]:
    env = {**offline.DEFAULTS, **os.environ}  # what the user set explicitly wins
    env[INDEX_ENV] = str(Path(index).expanduser().resolve())
    return env


def find_config(config: str) -> Path:
    path = Path(config).expanduser().resolve()
    if not path.is_file():
        raise UserError(f"{config}: no such file (run from the project folder or pass --config)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def serve(port: int, index: str, config: str = "langgraph.json") -> int:
    """Run the server in the foreground until it stops, Ctrl-C or SIGTERM."""
    path = find_config(config)
    if not Path(index).expanduser().is_dir():
        print(f"ipl: note: no index at {index} yet (build one with `ipl index`)", file=sys.stderr)
    print(f"IPL on http://{HOST}:{port}  (seller page: http://{HOST}:{port}/ipl/, index: {index})",
          file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="ipl-serve-") as workdir, \
            subprocess.Popen(command(path, port), cwd=workdir, env=environment(index)) as server:
        signal.signal(signal.SIGTERM, lambda signum, frame: server.terminate())
        try:
            return server.wait()
        except KeyboardInterrupt:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=10)
            return 130


def wait_until_up(url: str, server: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the server did not answer {url}/ok within {timeout_s:g} s")


@contextlib.contextmanager
def running(index: str, port: int | None = None, config: str = "langgraph.json", log: IO[str] | None = None,
            timeout_s: float = 90.0) -> Iterator[str]:
    """A server in the background for the block; yields its base URL. Always stopped on exit."""
    path = find_config(config)
    port = port or free_port()
    workdir = tempfile.TemporaryDirectory(prefix="ipl-serve-")
    server = subprocess.Popen(command(path, port), cwd=workdir.name, env=environment(index), start_new_session=True,
                              stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        url = f"http://{HOST}:{port}"
        wait_until_up(url, server, timeout_s)
        yield url
    finally:
        stop(server, grace_s=10)
        workdir.cleanup()


def stop(process: subprocess.Popen, grace_s: float = 15.0) -> None:
    """Stop a server started in its own session, with all its children: SIGTERM, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
