"""The warm worker behind `ipl list`: same listing as in-process, restarted when the index changes,
gone when idle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import QUERIES, SAMPLE
from ipl_graph.face import worker

IPL = str(Path(sys.executable).with_name("ipl"))  # the console script: main() with no argv


@pytest.fixture
def no_worker_after():
    yield
    worker.stop()


def ipl(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([IPL, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=None if env is None else os.environ | env)


def test_the_worker_lists_as_the_process_does(sample_index, no_worker_after):
    args = ("list", str(QUERIES / "Banana_001.jpg"), "--index", sample_index, "--json", "--hint", "very ripe")
    here = ipl(*args, "--no-worker")
    first, again = ipl(*args), ipl(*args)
    assert here.returncode == first.returncode == again.returncode == 0
    assert here.stdout == first.stdout == again.stdout
    assert worker.stop()  # it was the worker that answered, and it is still there


def test_errors_come_back_with_their_exit_code(sample_index, no_worker_after):
    out = ipl("list", "/no/such/photo.jpg", "--index", sample_index)
    assert out.returncode == 2
    assert out.stderr.strip() == "ipl: error: /no/such/photo.jpg: no such file"


def test_an_index_written_since_is_seen(tmp_path):
    (tmp_path / "a").write_text("1")
    before = worker.index_stamp(str(tmp_path))
    (tmp_path / "a").write_text("12")
    assert worker.index_stamp(str(tmp_path)) != before


def test_an_idle_worker_leaves(tmp_path):
    sock = tmp_path / "w.sock"
    code = ("import sys; from pathlib import Path; from ipl_graph.face import worker; worker.IDLE_S = 0;"
            " worker.warm = lambda *a: None; worker.Worker(Path(sys.argv[1])).serve()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(sock)])
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert not sock.exists()


def test_an_index_started_worker_serves_each_folder_its_own_index(sample_index, tmp_path, no_worker_after):
    """`ipl index` at a terminal (IPL_WORKER=1 here) leaves a worker warming up on the index it
    wrote; one worker serves folders whose indexes share a relative name, each from its own."""
    shop, other = tmp_path / "shop", tmp_path / "other"
    shop.mkdir(), other.mkdir()
    shutil.copytree(sample_index, shop / ".ipl-index")
    rows = [json.loads(line) for line in (SAMPLE / "listings.jsonl").read_text().splitlines()][:12]
    for row in rows:
        row["images"] = [str(SAMPLE / p) for p in row["images"]]
    (other / "few.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    worker.stop()
    made = ipl("index", "few.jsonl", cwd=other, env={"IPL_WORKER": "1"})
    assert made.returncode == 0, made.stderr
    deadline = time.monotonic() + 120
    while worker._connect(worker.socket_path()) is None:  # warming up on the index just written
        assert worker._starting(worker.socket_path()), "ipl index started no worker"
        assert time.monotonic() < deadline
        time.sleep(0.5)
    photo = str(QUERIES / "Oatly-Oat-Milk_001.jpg")
    served = {d: ipl("list", photo, "--json", cwd=d) for d in (other, shop, other)}
    here = {d: ipl("list", photo, "--json", "--no-worker", cwd=d) for d in (shop, other)}
    assert all(out.returncode == 0 for out in [*served.values(), *here.values()])
    assert served[shop].stdout == here[shop].stdout
    assert served[other].stdout == here[other].stdout
    assert here[shop].stdout != here[other].stdout  # two catalogs, two listings
    assert worker.stop()  # one worker answered all three


def test_no_worker_where_it_is_turned_off(sample_index, tmp_path):
    worker.stop()
    out = ipl("list", str(QUERIES / "Banana_001.jpg"), "--index", sample_index, env={"IPL_WORKER": "0"})
    assert out.returncode == 0, out.stderr
    assert not worker.stop()
