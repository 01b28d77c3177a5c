"""`ipl serve --data DIR` keeps its threads across a restart (issue #14): the real server is stopped
and started again on the same folder, and a finished thread, a thread waiting for the seller's
confirmation and the photo it was uploaded with are all still there; the confirmation then resumes."""

from __future__ import annotations

import os

import httpx
from langgraph_sdk import get_sync_client

from helpers import QUERIES, ROOT, SAMPLE, ipl_server
from ipl_graph.face.cli import main

BANANA = QUERIES / "Banana_001.jpg"
PAIR = [str(QUERIES / "Bravo-Apple-Juice_001.jpg"), str(SAMPLE / "images" / "Bravo-Apple-Juice_Iconic.jpg")]


def test_a_restarted_server_keeps_threads_state_and_a_pending_confirmation(sample_index, tmp_path, capsys):
    data = tmp_path / "data"
    served = ("--photos-dir", str(SAMPLE), "--data", str(data))
    with ipl_server(sample_index, tmp_path / "first.log", *served) as (url, _):
        sdk = get_sync_client(url=url, timeout=120)
        uploaded = httpx.post(f"{url}/ipl/photos", content=BANANA.read_bytes(), headers={"content-type": "image/jpeg"},
                              timeout=60).json()["photo"]
        done = sdk.threads.create()["thread_id"]
        assert sdk.runs.wait(done, "listing", input={"photos": [uploaded]})["category"] == "Banana"
        paused = sdk.threads.create()["thread_id"]
        sdk.runs.wait(paused, "listing", input={"photos": PAIR}, context={"confirm": True})
        before = {thread: sdk.threads.get_state(thread) for thread in (done, paused)}
        # A second server on the same folder would overwrite the first one's files: refused.
        assert main(["serve", "--port", "1", "--index", sample_index, "--config", str(ROOT / "langgraph.json"),
                     "--data", str(data)]) == 2
        assert "another `ipl serve` is using it" in capsys.readouterr().err

    with ipl_server(sample_index, tmp_path / "second.log", *served) as (url, _):
        sdk = get_sync_client(url=url, timeout=120)
        assert {done, paused} <= {t["thread_id"] for t in sdk.threads.search(limit=100)}
        for thread, state in before.items():
            after = sdk.threads.get_state(thread)
            assert after["values"] == state["values"] and after["next"] == state["next"]
            assert after["checkpoint"]["checkpoint_id"] == state["checkpoint"]["checkpoint_id"]
        assert os.path.isfile(uploaded) and sdk.threads.get_state(done)["values"]["photos"] == [uploaded]

        assert sdk.threads.get(paused)["status"] == "interrupted"
        waiting = sdk.threads.get_state(paused)
        assert waiting["next"] == ["confirm_attributes"]
        assert waiting["interrupts"][0]["value"]["attributes"]["Brand"] == "Bravo"
        listing = sdk.runs.wait(paused, "listing", command={"resume": {"attributes": {"Volume": "1 L"}}},
                                context={"confirm": True})
        assert listing["evidence"]["Volume"] == "seller" and "1 L" in listing["description"]
