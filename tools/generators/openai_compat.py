"""The `openai` generator: any OpenAI-compatible chat server (vLLM, SGLang, Ollama, LM Studio) through
langchain-openai's ChatOpenAI, streaming, with the photos sent as data-URL image parts."""

from __future__ import annotations

import os
from typing import Any

from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from ipl_graph.errors import UserError


class OpenAICompatibleChat(ChatOpenAI):
    """ChatOpenAI that tells the generate node to attach the photos and sends the token limit as
    `max_tokens`, which vLLM, SGLang and Ollama all read (ChatOpenAI renames it for OpenAI's API)."""

    multimodal: bool = True

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        if "max_completion_tokens" in payload:
            payload["max_tokens"] = payload.pop("max_completion_tokens")
        return payload


def openai_chat(model: str, base_url: str) -> OpenAICompatibleChat:
    if not base_url.startswith(("http://", "https://")):
        raise UserError("--generator openai needs --base-url http(s)://HOST:PORT/v1 (vLLM, SGLang, Ollama)")
    if not model:
        raise UserError("--generator openai needs --model NAME: a model the server serves")
    # Local servers take any key; a hosted one reads its key the usual way, from OPENAI_API_KEY.
    return OpenAICompatibleChat(
        model=model, base_url=base_url, api_key=SecretStr(os.environ.get("OPENAI_API_KEY") or "EMPTY"),
        streaming=True, max_retries=1,
    )
