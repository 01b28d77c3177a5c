"""`ipl tune`: fine-tune a local Qwen2-VL / Qwen2.5-VL class folder on `ipl sft-data` records with
TRL's SFT trainer (transformers' Trainer underneath: accelerate / DeepSpeed for more than one GPU),
optionally through LoRA adapters (peft) that are merged into the saved model.

The seed's recipe, scaled to the data: AdamW (beta 0.9/0.98, eps 1e-6), learning rate 1e-5, cosine
schedule with 1 % warmup, 3 epochs, a global batch of 768 through gradient accumulation (smaller for
small data, so an epoch still has `min_steps_per_epoch` steps), photos at most 448 px a side,
sequences of 1024 tokens, the vision tower frozen (its projector, the merger, trains), loss on the
assistant's tokens only, bf16 on a GPU and fp32 on CPU. The saved folder is a whole model that
`ipl list --generator transformers --model OUT` loads as it loads the base.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ipl_graph.errors import UserError

STATE_FILE = "trainer_state.json"
RECIPE_FILE = "ipl_tune.json"
WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".safetensors.index.json", ".bin.index.json")
MODEL_FILES = {"config.json", "generation_config.json"}
"""Written by save_pretrained; everything else of the base folder (tokenizer, image processor, chat
template) is copied as it is."""


@dataclass(frozen=True)
class TuneConfig:
    """The knobs of a run; defaults are the seed's settings (ZeRO-1 on 24 GPUs for 16 h there)."""

    learning_rate: float = 1e-5
    epochs: float = 3.0
    max_steps: int = -1
    """Stop after this many optimizer steps (-1: run the epochs)."""
    warmup_ratio: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-6
    weight_decay: float = 0.0
    global_batch: int | None = None
    """Records per optimizer step over all devices; None: the seed's 768, less for small data."""
    seed_batch: int = 768
    min_steps_per_epoch: int = 20
    """Small data shrinks the global batch so that an epoch still takes this many optimizer steps."""
    micro_batch: int = 4
    """Records per device per forward pass; the rest of the global batch is gradient accumulation."""
    max_length: int = 1024
    image_side: int = 448
    lora: bool = False
    lora_rank: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    save_steps: int = 500
    """Checkpoints (in OUT/checkpoints, the last two kept) for a long run to resume from."""
    logging_steps: int = 1
    seed: int = 0
    gradient_checkpointing: bool | None = None
    """None: on a GPU (memory), off on CPU (speed)."""
    quiet: bool = False


def batch_plan(records: int, config: TuneConfig, world: int) -> tuple[int, int, int]:
    """(global batch, per-device batch, accumulation steps)."""
    wanted = config.global_batch or min(config.seed_batch, max(1, records // config.min_steps_per_epoch))
    micro = max(1, min(config.micro_batch, math.ceil(wanted / world)))
    accumulation = max(1, math.ceil(wanted / (micro * world)))
    return micro * world * accumulation, micro, accumulation


def read_records(path: str) -> list[dict[str, Any]]:
    """The records of an `ipl sft-data` file (or its folder); a one-line UserError if there are none."""
    file = Path(path)
    if file.is_dir():
        file = file / "train.jsonl"
    if not file.is_file():
        raise UserError(f"{path}: no instruction data (a train.jsonl written by `ipl sft-data`)")
    records = []
    with file.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                raise UserError(f"{file}:{n}: not a JSON object") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("messages"), list):
                raise UserError(f"{file}:{n}: a record needs 'messages' (as `ipl sft-data` writes them)")
            if not any(m.get("role") == "assistant" for m in rec["messages"]):
                raise UserError(f"{file}:{n}: a record needs an assistant message to learn from")
            rec.setdefault("images", [])
            records.append(rec)
    if not records:
        raise UserError(f"{file}: no records to tune on")
    return records


def is_vision_tower(name: str) -> bool:
    """The ViT's parameters (frozen); the merger that projects into the language model is not."""
    return (".visual." in f".{name}" or name.startswith("visual.")) and ".merger." not in name


def freeze_vision_tower(model: Any) -> int:
    """Freeze the vision tower; the number of parameters frozen."""
    frozen = 0
    for name, param in model.named_parameters():
        if is_vision_tower(name):
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


def lora_config(config: TuneConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout, task_type="CAUSAL_LM",
        # the language model's projections only: the vision tower stays as it is
        target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
    )


def load_base(base: str) -> tuple[Any, Any]:
    """(model, processor) of a local base folder, on the training dtype (bf16 on a GPU, fp32 on CPU)."""
    folder = Path(base).expanduser()
    if not (folder / "config.json").is_file():
        raise UserError(f"--base {base!r} is not a model folder with a config.json (only local models load)")
    import torch
    from transformers import AutoModelForImageTextToText

    from ipl_tools.generators.local_vlm import load_processor

    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    try:
        processor = load_processor(folder)
        model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype)
    except Exception as exc:  # a folder that holds no usable model is the user's to fix
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load an image-text-to-text model from {base!r}: {reason}") from None
    return model, processor


def tune(data: str, base: str, out: str, config: TuneConfig | None = None) -> dict[str, Any]:
    """Train, save the whole model (adapters merged) with the base's processor files and the loss
    log (`trainer_state.json`) to `out`; return a summary."""
    import torch

    try:
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer
    except ImportError as exc:
        hint = "pip install 'ipl[tune]'"
        raise UserError(f"`ipl tune` needs the training stack ({exc.name} is missing): {hint}") from None

    from ipl_tools.tuning.collator import AssistantOnlyCollator

    config = config or TuneConfig()
    records = read_records(data)
    if Path(out).resolve() == Path(base).expanduser().resolve():
        raise UserError("--out must be another folder than --base")
    model, processor = load_base(base)
    frozen = freeze_vision_tower(model)
    cuda = torch.cuda.is_available()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    global_batch, micro, accumulation = batch_plan(len(records), config, world)
    checkpoints = Path(out) / "checkpoints"
    checkpointing = cuda if config.gradient_checkpointing is None else config.gradient_checkpointing
    args = SFTConfig(
        output_dir=str(checkpoints), num_train_epochs=config.epochs, max_steps=config.max_steps,
        learning_rate=config.learning_rate, lr_scheduler_type="cosine",
        warmup_steps=config.warmup_ratio,  # below 1: a share of the steps
        optim="adamw_torch", adam_beta1=config.adam_beta1, adam_beta2=config.adam_beta2,
        adam_epsilon=config.adam_epsilon, weight_decay=config.weight_decay,
        per_device_train_batch_size=micro, gradient_accumulation_steps=accumulation,
        bf16=cuda, fp16=False, use_cpu=not cuda, max_length=config.max_length,
        gradient_checkpointing=checkpointing, gradient_checkpointing_kwargs={"use_reentrant": False},
        logging_steps=config.logging_steps, logging_first_step=True, save_strategy="steps",
        save_steps=config.save_steps, save_total_limit=2, report_to="none", seed=config.seed,
        remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True},
        disable_tqdm=config.quiet, dataloader_num_workers=0,
    )
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(records), processing_class=processor,
        data_collator=AssistantOnlyCollator(processor, config.max_length, config.image_side),
        peft_config=lora_config(config) if config.lora else None,
    )
    if config.quiet:
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # without a progress bar, the Trainer prints every log line
    started = time.perf_counter()
    metrics = trainer.train().metrics
    seconds = time.perf_counter() - started
    trained: Any = trainer.model
    trainable = sum(int(p.numel()) for p in trained.parameters() if p.requires_grad)
    tuned = trained.merge_and_unload() if config.lora else trained
    save(tuned, base, out)
    trainer.state.save_to_json(str(Path(out) / STATE_FILE))
    shutil.rmtree(checkpoints, ignore_errors=True)  # the run finished: the model folder is the result
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    summary = {
        "data": data, "base": base, "out": out, "records": len(records), "steps": trainer.state.global_step,
        "global_batch": global_batch, "per_device_batch": micro, "accumulation": accumulation, "devices": world,
        "device": "cuda" if cuda else "cpu", "dtype": "bf16" if cuda else "fp32", "frozen_vision_params": frozen,
        "trainable_params": trainable,
        "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
        "seconds": round(seconds, 1), "samples_per_s": round(float(metrics.get("train_samples_per_second", 0.0)), 2),
        "config": asdict(replace(config, quiet=False)),
    }
    (Path(out) / RECIPE_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def save(model: Any, base: str, out: str) -> None:
    """The model's weights and config, and the base folder's tokenizer, image processor and chat template."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    for file in Path(base).expanduser().iterdir():
        if file.is_file() and file.name not in MODEL_FILES and not file.name.endswith(WEIGHTS):
            shutil.copy2(file, folder / file.name)
