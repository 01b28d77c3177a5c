"""Helpers the tests share (importable as `helpers`: pytest's pythonpath includes tests/)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from langgraph.runtime import Runtime

from ipl_graph.context import Context
from ipl_graph.policies import load_policy
from ipl_graph.state import State, updated

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "grocery"
QUERIES = SAMPLE / "queries"


def runtime(context: Context) -> Runtime[Context]:
    return Runtime(context=context)


def apply(state: State, update: dict) -> State:
    """The state after a node's partial update (no reducers in this graph: keys are replaced); values
    in JSON form are validated into the state's models."""
    return updated(state, update)


def write_policy(tmp_path: Path, **changes: dict) -> str:
    """A copy of the default policy with some sections changed; returns its path."""
    import yaml

    raw = load_policy().model_dump()
    for section, values in changes.items():
        raw[section] = {**raw[section], **values}
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return str(path)


@contextlib.contextmanager
def ipl_server(index: str, log_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, IO]]:
    """`ipl serve` on a free port with `index` and `args` for the block: (its URL, its log, open for
    reading). Fails the test with the log's tail if it does not start; stopped with its process group."""
    import pytest

    from ipl_graph.face.serve import free_port, stop, wait_until_up

    port = free_port()
    with open(log_path, "w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "ipl_graph.face.cli", "serve", "--port", str(port), "--index", index,
             "--config", str(ROOT / "langgraph.json"), *args],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            try:
                wait_until_up(url, process, 90)
            except (RuntimeError, TimeoutError):
                log.seek(0)
                pytest.fail(f"ipl serve did not start:\n{log.read()[-3000:]}")
            yield url, log
        finally:
            stop(process)


@contextlib.contextmanager
def chroma_server(path: Path, log_path: Path) -> Iterator[str]:
    """A real Chroma server (`chroma run`, from the chromadb package) keeping its data in `path`, on a
    free loopback port for the block: yields its URL. Stopped with its process group."""
    import time
    import urllib.request

    import pytest

    from ipl_graph.face.serve import free_port, stop

    port = free_port()
    with open(log_path, "w+") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("chroma")), "run", "--path", str(path), "--host", "127.0.0.1",
             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2):
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        pytest.fail(f"chroma run did not start:\n{log.read()[-3000:]}")
                    time.sleep(0.2)
            yield url
        finally:
            stop(process)


def state_of(**values: object) -> State:
    """A State from values in JSON form (nested models as dicts), validated as the graph holds them."""
    return updated(State(), values)
