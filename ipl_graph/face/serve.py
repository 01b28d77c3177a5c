"""`ipl serve`: the LangGraph server for langgraph.json, offline.

It runs `langgraph dev --no-browser --no-reload` (the in-memory server: threads, runs, streaming and a
checkpointer for the confirmation step) with the settings that keep it from calling home. It runs in
a temporary folder, where the dev server keeps its files and this server's photo store, so nothing
outlives it; with `--data DIR` it runs in DIR instead, where the in-memory runtime's own persistence
(`.langgraph_api/`, flushed every 10 s and on a clean stop) keeps threads, runs and checkpoints, and
the photos they name, across a restart. One server at a time uses a DIR (a lock file in it).

What a run may not choose (index, policy, generator, model, base URL, the folder of photos clients
may name, the access token) is the server's configuration: `Settings`, handed to the
server process as IPL_* environment variables. Off loopback a token is required. `running()` starts
one for tests and scripts and always stops it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
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

from ipl_graph import taming
from ipl_graph.context import absolute_backend, split_backend
from ipl_graph.errors import UserError

HOST = "127.0.0.1"
# The Context fields `ipl serve` decides for every run, and the variables that carry them.
CONTEXT_ENV = {"index_dir": "IPL_INDEX_DIR", "policy": "IPL_POLICY", "generator": "IPL_GENERATOR",
               "model": "IPL_MODEL", "base_url": "IPL_BASE_URL", "embedder": "IPL_EMBEDDER"}
INDEX_ENV = CONTEXT_ENV["index_dir"]
PHOTOS_DIR_ENV = "IPL_PHOTOS_DIR"  # a folder of the server's whose photos clients may name
STORE_ENV = "IPL_PHOTO_STORE"  # where uploads and data URLs are kept
TOKEN_ENV = "IPL_TOKEN"  # the bearer token clients must send; none: no authentication
PERSISTENCE_ENV = "LANGGRAPH_DISABLE_FILE_PERSISTENCE"  # the in-memory runtime's switch for its pickle files
DATA_LOCK = "ipl-serve.lock"


@dataclasses.dataclass(kw_only=True)
class Settings:
    """How one server runs; the run-time knobs among them apply to every run."""

    index: str = ".ipl-index"
    policy: str = "default"
    generator: str = "template"
    model: str = ""
    base_url: str = ""
    embedder: str = "efficientnet-lite0"
    """The image embedder the index was built with (`ipl index --embedder`)."""
    photos_dir: str = ""
    token: str = ""
    host: str = HOST
    config: str = "langgraph.json"
    data: str = ""
    """Folder that keeps threads, runs, checkpoints and uploaded photos across restarts; none: a
    temporary one, removed on exit."""

    def check(self) -> None:
        """One-line UserErrors for settings that cannot serve, before anything starts."""
        from ipl_graph import plugins
        from ipl_graph.policies import load_policy

        if not self.token and not is_loopback(self.host):
            raise UserError(f"--host {self.host} is reachable from other machines: set an access token"
                            f" (--token or {TOKEN_ENV})")
        if self.photos_dir and not Path(self.photos_dir).expanduser().is_dir():
            raise UserError(f"--photos-dir {self.photos_dir}: no such folder")
        if self.data and Path(self.data).expanduser().exists() and not Path(self.data).expanduser().is_dir():
            raise UserError(f"--data {self.data}: not a folder")
        load_policy(self.policy)
        for kind, name in (("generator", self.generator), ("embedder", split_backend(self.embedder)[0])):
            known = plugins.factories(kind)  # names only: a model loads on the first run, not here
            if name not in known:
                raise UserError(f"--{kind} {name!r} is unknown; known: {', '.join(sorted(known))}")


def is_url(index: str) -> bool:
    """Whether an index is on a Chroma server (`ipl_tools.catalog.chroma_server`) rather than in a folder."""
    return index.startswith(("http://", "https://"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def command(config: Path, port: int, host: str = HOST) -> list[str]:
    return [sys.executable, "-m", "langgraph_cli", "dev", "--no-browser", "--no-reload", "--host", host,
            "--port", str(port), "--config", str(config), "--server-log-level", "WARNING"]


def environment(settings: Settings, workdir: str) -> dict[str, str]:
    """The server process's environment: offline defaults the user may override, then the settings,
    which nothing inherited overrides (a stray IPL_BASE_URL must not redirect the server)."""
    env = {**taming.DEFAULTS, **os.environ}
    env.update({
        INDEX_ENV: settings.index if is_url(settings.index) else str(Path(settings.index).expanduser().resolve()),
        CONTEXT_ENV["policy"]: settings.policy,
        CONTEXT_ENV["generator"]: settings.generator,
        CONTEXT_ENV["model"]: settings.model,
        CONTEXT_ENV["base_url"]: settings.base_url,
        CONTEXT_ENV["embedder"]: absolute_backend(settings.embedder),
        PHOTOS_DIR_ENV: str(Path(settings.photos_dir).expanduser().resolve()) if settings.photos_dir else "",
        STORE_ENV: str(Path(workdir) / "photos"),
        TOKEN_ENV: settings.token,
    })
    if settings.data:  # persistence is what --data is for: an inherited switch must not turn it off
        env[PERSISTENCE_ENV] = "false"
    policy = Path(settings.policy).expanduser()
    if policy.suffix in {".yaml", ".yml"}:  # the server runs in its own folder
        env[CONTEXT_ENV["policy"]] = str(policy.resolve())
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


def serve(port: int, settings: Settings) -> int:
    """Run the server in the foreground until it stops, Ctrl-C or SIGTERM. Without a token in the
    settings, IPL_TOKEN's (the safer way: a command line is visible to every user of the machine)."""
    path = find_config(settings.config)
    settings = dataclasses.replace(settings, token=settings.token or os.environ.get(TOKEN_ENV, ""))
    settings.check()
    if not is_url(settings.index) and not Path(settings.index).expanduser().is_dir():
        print(f"ipl: note: no index at {settings.index} yet (build one with `ipl index`)", file=sys.stderr)
    where = f"http://{settings.host}:{port}"
    print(f"IPL on {where}  (seller page: {where}/ipl/{'#token=…' if settings.token else ''}, index: "
          f"{settings.index}, generator: {settings.generator}, threads: {settings.data or 'in memory only'})",
          file=sys.stderr, flush=True)
    with workfolder(settings.data) as workdir, \
            subprocess.Popen(command(path, port, settings.host), cwd=workdir,
                             env=environment(settings, workdir)) as server:
        signal.signal(signal.SIGTERM, lambda signum, frame: server.terminate())
        try:
            return server.wait()
        except KeyboardInterrupt:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=10)
            return 130


@contextlib.contextmanager
def workfolder(data: str) -> Iterator[str]:
    """The server's working folder: `data`, created if need be and locked for the block (one server
    at a time keeps its threads there), or a temporary one removed after it."""
    if not data:
        with tempfile.TemporaryDirectory(prefix="ipl-serve-") as workdir:
            yield workdir
        return
    folder = Path(data).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / DATA_LOCK).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"--data {data}: another `ipl serve` is using it") from None
        yield str(folder)


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
            timeout_s: float = 90.0, **settings: str) -> Iterator[str]:
    """A server in the background for the block (`settings`: more `Settings` fields); yields its
    base URL. Always stopped on exit."""
    chosen = Settings(index=index, config=config, **settings)
    path = find_config(config)
    port = port or free_port()
    with workfolder(chosen.data) as workdir:
        server = subprocess.Popen(command(path, port, chosen.host), cwd=workdir,
                                  env=environment(chosen, workdir), start_new_session=True,
                                  stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            url = f"http://{HOST}:{port}"
            wait_until_up(url, server, timeout_s)
            yield url
        finally:
            stop(server, grace_s=10)


def stop(process: subprocess.Popen, grace_s: float = 15.0) -> None:
    """Stop a server started in its own session, with all its children: SIGTERM, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
