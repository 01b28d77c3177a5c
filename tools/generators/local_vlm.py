"""The `transformers` generator: a local image-text-to-text model (Qwen2-VL / Qwen2.5-VL class) loaded
from a folder, as a LangChain chat model. Photos go in as images; the reply streams token by token
through TextIteratorStreamer. bf16 on a GPU, fp32 on CPU. Nothing is fetched from a hub."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from ipl_graph.errors import UserError

ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def load(path: str) -> tuple[Any, Any]:
    """(model, processor) from a local folder; a one-line UserError if it is not a usable model."""
    folder = Path(path).expanduser()
    if not path:
        raise UserError("--generator transformers needs --model PATH: a local folder with the model")
    if not (folder / "config.json").is_file():
        raise UserError(f"model path {path!r} is not a folder with a config.json (only local models load)")
    import torch
    from transformers import AutoModelForImageTextToText

    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        processor = load_processor(folder)
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        model: Any = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype)
        model = model.to(device).eval()
    except Exception as exc:  # any loading failure is the user's model folder: say so in one line
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load an image-text-to-text model from {path!r}: {reason}") from None
    return model, processor


def load_processor(folder: Path) -> Any:
    """The model's processor. Without torchvision (the CPU torch here) every video processor fails to
    import, so AutoProcessor fails too: build an image-only processor from tokenizer and PIL image
    processor instead; photos never need the video half."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(folder)
    except ImportError:
        processor = None
    if getattr(processor, "image_processor", None) is None:
        processor = _image_only_processor(folder)
    if not getattr(processor, "chat_template", None):
        raise ValueError("the model folder has no chat template")
    return processor


def _image_only_processor(folder: Path) -> Any:
    import transformers
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer, ProcessorMixin
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    config = AutoConfig.from_pretrained(folder)
    name = PROCESSOR_MAPPING_NAMES.get(config.model_type)
    if not name:
        raise ValueError(f"no processor is known for model type {config.model_type!r}")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    image_processor = AutoImageProcessor.from_pretrained(folder)  # falls back to the PIL backend

    def __init__(self: Any, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None,
                 **kwargs: Any) -> None:
        # What Qwen2-VL's processor sets up, less the video processor.
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = getattr(tokenizer, "image_token_id", None) or tokenizer.convert_tokens_to_ids(
            self.image_token)
        self.video_token_id = getattr(tokenizer, "video_token_id", None) or tokenizer.convert_tokens_to_ids(
            self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    image_only = type(f"{name}ImageOnly", (getattr(transformers, name),), {"__init__": __init__})
    return image_only(image_processor, tokenizer, chat_template=tokenizer.chat_template or _chat_template(folder))


def _chat_template(folder: Path) -> str | None:
    """A processor-level chat template file, as Qwen2-VL repositories ship it."""
    if (folder / "chat_template.jinja").is_file():
        return (folder / "chat_template.jinja").read_text(encoding="utf-8")
    if (folder / "chat_template.json").is_file():
        return json.loads((folder / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
    return None


def to_conversation(messages: list[BaseMessage]) -> tuple[list[dict[str, Any]], list[Any]]:
    """LangChain messages -> (transformers chat, PIL images); data-URL image parts become images."""
    from PIL import Image

    conversation, images = [], []
    for message in messages:
        content = message.content if isinstance(message.content, list) else [message.content]
        parts: list[dict[str, Any]] = []
        for part in content:
            if isinstance(part, str):
                parts.append({"type": "text", "text": part})
            elif part.get("type") == "text":
                parts.append({"type": "text", "text": part["text"]})
            elif part.get("type") == "image_url":
                url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else part["image_url"]
                if not url.startswith("data:"):
                    raise ValueError("the transformers generator takes photos as data URLs only")
                data = base64.b64decode(url.split(",", 1)[1])
                images.append(Image.open(io.BytesIO(data)).convert("RGB"))
                parts.append({"type": "image"})
        parts.sort(key=lambda p: p["type"] != "image")  # photos first, as Qwen2-VL was trained
        conversation.append({"role": ROLES.get(message.type, "user"), "content": parts})
    return conversation, images


class TransformersChatModel(BaseChatModel):
    """A local vision-language model; `max_tokens`, `temperature`, `top_p` per call override the fields."""

    model_path: str
    multimodal: bool = True
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    _model: Any = PrivateAttr(default=None)
    _processor: Any = PrivateAttr(default=None)
    # One long-lived thread runs every generate() of this model, one at a time: on a GPU, generate()
    # on a fresh thread per call ran 12x slower (27 vs 330 tokens/s on an H200, tiny model).
    _worker: ThreadPoolExecutor = PrivateAttr(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="ipl-transformers")
    )

    @classmethod
    def from_path(cls, path: str) -> TransformersChatModel:
        chat = cls(model_path=path)
        chat._model, chat._processor = load(path)
        return chat

    @property
    def _llm_type(self) -> str:
        return "ipl-transformers"

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> ChatResult:
        text = "".join(str(c.message.content) for c in self._stream(messages, stop, run_manager, **kwargs))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self, messages: list[BaseMessage], stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        conversation, images = to_conversation(messages)
        prompt = self._processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        inputs = self._processor(text=[prompt], images=images or None, return_tensors="pt").to(self._model.device)
        streamer = TextIteratorStreamer(self._processor.tokenizer, skip_prompt=True, skip_special_tokens=True,
                                        timeout=600)
        halt = threading.Event()

        class Halt(StoppingCriteria):  # the consumer closed the stream (moderation, timeout): stop
            def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> bool:
                return halt.is_set()

        temperature = float(kwargs.get("temperature", self.temperature))
        options: dict[str, Any] = {
            "max_new_tokens": int(kwargs.get("max_tokens") or self.max_new_tokens), "do_sample": temperature > 0,
            "streamer": streamer, "stopping_criteria": StoppingCriteriaList([Halt()]),
        }
        if temperature > 0:
            options |= {"temperature": temperature, "top_p": float(kwargs.get("top_p", self.top_p))}
        def run() -> None:
            import torch

            try:
                with torch.inference_mode():
                    self._model.generate(**inputs, **options)
            except BaseException:
                streamer.end()  # unblock the reader; the error comes back through the future
                raise

        done = self._worker.submit(run)
        try:
            for text in streamer:
                if not text:
                    continue
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=text))
                if run_manager:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
        finally:
            halt.set()
        done.result()  # raises what generate() raised
