"""The batches of instruction tuning: records rendered with the model's own chat template and
processor, photos scaled to the training size, and labels that keep only the assistant's spans.

A span is what follows `<|im_start|>assistant\n` up to and including its `<|im_end|>` (so the model
learns to stop), as the Qwen-VL fine-tuning recipes mask it; the system and user turns, the image
tokens and the padding are -100 and carry no loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IGNORE = -100
START, END = "<|im_start|>", "<|im_end|>"


def chat_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A record's messages as the chat template takes them: image parts as bare `{"type": "image"}`
    (the paths go to the processor; a dataset's struct columns may add null keys to every part)."""
    chat = []
    for message in messages:
        content = message["content"]
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        parts = [{"type": "image"} if p.get("type") == "image" else {"type": "text", "text": p.get("text") or ""}
                 for p in content]
        chat.append({"role": message["role"], "content": parts})
    return chat


def assistant_mask(ids: list[int], start: int, header: list[int], end: int) -> list[bool]:
    """True on the tokens of every assistant reply: after `start` + `header`, through `end`."""
    mask = [False] * len(ids)
    i, n = 0, len(header)
    while i < len(ids):
        if ids[i] == start and ids[i + 1 : i + 1 + n] == header:
            j = i + 1 + n
            while j < len(ids):
                mask[j] = True
                if ids[j] == end:
                    break
                j += 1
            i = j + 1
        else:
            i += 1
    return mask


def load_photo(path: str, side: int) -> Any:
    """A photo upright, RGB, at most `side` pixels a side."""
    from PIL import Image, ImageOps

    with Image.open(path) as photo:
        image = ImageOps.exif_transpose(photo).convert("RGB")
    image.thumbnail((side, side))
    return image


@dataclass
class AssistantOnlyCollator:
    """Records -> model inputs with labels on the assistant spans only."""

    processor: Any
    max_length: int = 1024
    image_side: int = 448

    def __post_init__(self) -> None:
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "right"  # truncation then cuts the end of a reply, never the photos
        self.start = int(tokenizer.convert_tokens_to_ids(START))
        self.end = int(tokenizer.convert_tokens_to_ids(END))
        self.header = list(tokenizer.encode("assistant\n", add_special_tokens=False))
        self.image_token = int(getattr(self.processor, "image_token_id", None)
                               or tokenizer.convert_tokens_to_ids("<|image_pad|>"))

    def __call__(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        texts, images = [], []
        for rec in records:
            texts.append(self.processor.apply_chat_template(chat_of(rec["messages"]), tokenize=False,
                                                            add_generation_prompt=False))
            images += [load_photo(p, self.image_side) for p in rec.get("images") or []]
        batch = self.processor(text=texts, images=images or None, return_tensors="pt", padding=True)
        labels = batch["input_ids"].clone()  # (B, T)
        for row, ids in enumerate(batch["input_ids"].tolist()):
            keep = assistant_mask(ids, self.start, self.header, self.end)
            labels[row, [i for i, k in enumerate(keep) if not k]] = IGNORE
        labels[batch["attention_mask"] == 0] = IGNORE
        batch["labels"] = labels
        return self._truncated(batch)

    def _truncated(self, batch: Any) -> Any:
        """At most `max_length` tokens, but never cutting into the image tokens (the model needs every one)."""
        ids = batch["input_ids"]
        if ids.shape[1] <= self.max_length:
            return batch
        photo_positions = (ids == self.image_token).nonzero()
        keep = max(self.max_length, int(photo_positions[:, 1].max()) + 1 if len(photo_positions) else 0)
        for key in ("input_ids", "attention_mask", "labels"):
            batch[key] = batch[key][:, :keep]
        for key in ("token_type_ids", "mm_token_type_ids"):
            if key in batch:
                batch[key] = batch[key][:, :keep]
        return batch
