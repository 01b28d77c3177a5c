"""The warm worker behind `ipl list`: same listing as in-process, restarted when the index changes,
gone when idle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import QUERIES
from ipl_graph.face import worker

IPL = str(Path(sys.executable).with_name("ipl"))  # the console script: main() with no argv


@pytest.fixture
def no_worker_after():
    yield
    worker.stop()


def ipl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([IPL, *args], capture_output=True, text=True, timeout=300)


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
            " worker.warm = lambda: None; worker.Worker(Path(sys.argv[1])).serve()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(sock)])
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert not sock.exists()
