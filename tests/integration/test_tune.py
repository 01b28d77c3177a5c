"""`ipl tune` on a tiny Qwen2-VL built from a config (no download), with real TRL and peft, on
instruction records `ipl sft-data` builds from real sample photos: the labels cover exactly the
assistant's replies; the vision tower is bit-identical after training while the projector and the
language model move; the loss falls; the saved folder (LoRA merged too) lists a photo through
`--generator transformers`; a user's mistakes are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers import QUERIES, SAMPLE, write_policy
from ipl_graph.face.cli import main
from ipl_tools.tuning.collator import IGNORE, AssistantOnlyCollator, chat_of, load_photo
from ipl_tools.tuning.sft_data import build
from ipl_tools.tuning.tune import TuneConfig, is_vision_tower, tune

pytest.importorskip("trl")
pytest.importorskip("peft")

BANANA = str(QUERIES / "Banana_001.jpg")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> str:
    from tiny_vlm import build as build_tiny

    return str(build_tiny(tmp_path_factory.mktemp("tiny-qwen2-vl")))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> str:
    """A small fixed set: the records of six sample listings with descriptions (all instruction kinds
    but references), and a text-only Chinese one."""
    rows = [json.loads(line) for line in (SAMPLE / "listings.jsonl").read_text().splitlines()]
    picked = [r for r in rows if r["description"]][:6]
    for r in picked:
        r["images"] = [str(SAMPLE / p) for p in r["images"]]
    picked.append({"id": "zh-1", "images": [], "title": "耐克黑色运动鞋", "lang": "zh", "attributes": {},
                   "description": "全新未拆封的耐克黑色运动鞋，尺码42，买大了所以转让。"})
    folder = tmp_path_factory.mktemp("sft")
    (folder / "listings.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in picked))
    build([str(folder / "listings.jsonl")], folder)
    return str(folder / "train.jsonl")


def records(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def weights(folder: str) -> dict[str, torch.Tensor]:
    return load_file(str(Path(folder) / "model.safetensors"))


def test_labels_cover_exactly_the_assistant_replies(tiny_model, data):
    from ipl_tools.generators.local_vlm import load_processor

    processor = load_processor(Path(tiny_model))
    collator = AssistantOnlyCollator(processor)
    batch_records = records(data)[:6]
    assert {r["type"] for r in batch_records} & {"image_only", "image_template"}
    batch = collator(batch_records)
    for row, rec in enumerate(batch_records):
        # independently: the prompt as the generator renders it, then the reply and its end-of-turn token
        prompt = processor.apply_chat_template(chat_of(rec["messages"][:2]), add_generation_prompt=True, tokenize=False)
        prompt_ids = processor(text=[prompt], images=[load_photo(p, 448) for p in rec["images"]] or None,
                               return_tensors="pt")["input_ids"][0]
        reply = rec["messages"][2]["content"][0]["text"]
        reply_ids = processor.tokenizer(reply + "<|im_end|>", add_special_tokens=False)["input_ids"]
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        start = len(prompt_ids)
        assert torch.equal(ids[:start], prompt_ids)
        assert (labels[:start] == IGNORE).all()
        assert labels[start : start + len(reply_ids)].tolist() == reply_ids
        assert (labels[start + len(reply_ids) :] == IGNORE).all()  # the newline after the turn, the padding


def test_tuning_lowers_the_loss_freezes_the_vision_tower_and_writes_a_model_that_lists(tiny_model, data, tmp_path,
                                                                                   sample_index, capsys):
    out = str(tmp_path / "tuned")
    summary = tune(data, tiny_model, out, TuneConfig(learning_rate=3e-3, max_steps=30, global_batch=4, quiet=True))
    state = json.loads((Path(out) / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert len(losses) == 30 and summary["steps"] == 30
    assert sum(losses[-5:]) / 5 < 0.8 * losses[0], losses  # clearly falling, not noise
    before, after = weights(tiny_model), weights(out)
    assert set(before) == set(after)
    vision = [k for k in before if is_vision_tower(k)]
    assert vision and all(torch.equal(before[k], after[k]) for k in vision)
    assert any(not torch.equal(before[k], after[k]) for k in before if ".merger." in k)  # the projector trains
    assert any(not torch.equal(before[k], after[k]) for k in before if "language_model" in k or k.startswith("model.l"))
    assert summary["dtype"] == "fp32" and summary["frozen_vision_params"] > 0
    assert not (Path(out) / "checkpoints").exists()

    policy = write_policy(tmp_path, generation={"max_new_tokens": 16, "temperature": 0.0})
    code = main(["list", BANANA, "--index", sample_index, "--generator", "transformers", "--model", out,
                 "--policy", policy, "--json"])
    listing = json.loads(capsys.readouterr().out)
    assert code == 0 and listing["description"]
    assert "generator failed" not in (listing["degraded"] or "")


def test_lora_adapters_are_merged_into_a_plain_model_folder(tiny_model, data, tmp_path):
    out = str(tmp_path / "lora")
    config = TuneConfig(learning_rate=1e-2, max_steps=4, global_batch=2, lora=True, lora_rank=4, lora_alpha=8,
                        quiet=True)
    summary = tune(data, tiny_model, out, config)
    before, after = weights(tiny_model), weights(out)
    assert set(after) == set(before)  # no adapter weights left: merged
    assert 0 < summary["trainable_params"] < sum(t.numel() for t in before.values()) / 4
    assert all(torch.equal(before[k], after[k]) for k in before if is_vision_tower(k) or ".merger." in k)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.endswith("q_proj.weight"))

    from ipl_tools.generators.local_vlm import TransformersChatModel

    model = TransformersChatModel.from_path(out)
    assert model.invoke("Describe the item.", max_tokens=4).content is not None


@pytest.mark.parametrize("case", ["missing base", "empty data", "not records"])
def test_a_users_mistake_is_one_line(tiny_model, data, tmp_path, capsys, case):
    base, path = tiny_model, data
    if case == "missing base":
        base = str(tmp_path / "no-model")
    elif case == "empty data":
        path = str(tmp_path / "empty.jsonl")
        Path(path).write_text("\n")
    else:
        path = str(tmp_path / "rows.jsonl")
        Path(path).write_text('{"id": "a", "title": "a listing, not a record"}\n')
    assert main(["tune", path, "--base", base, "--out", str(tmp_path / "out"), "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ipl: error: ") and len(err.strip().splitlines()) == 1
