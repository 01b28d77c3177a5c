"""Fake chat models for the tests, in the style of LangGraph's own test fakes: subclasses of
langchain_core's `GenericFakeChatModel` that also stream word by word, take `bind_tools` and give
structured output (the stock fake raises on the last two).

Each stands in for a model that cannot run here: the description writer is, in production, a large
vision-language model behind an OpenAI-compatible server (vLLM, SGLang, Ollama) or a local
Qwen2-VL. A test registers one as a generator plugin (`generator_plugin`) and names it in the Context.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.language_models import GenericFakeChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import Runnable, RunnableLambda

from ipl_graph.hookspecs import hookimpl


class FakeChatModel(GenericFakeChatModel):
    """Stands in for the large description-writing model (a VLM behind a model server): replies with
    the scripted texts in turn, streamed one word at a time (each word with the whitespace after it),
    and counts the chunks it yielded, so a test can tell a stream stopped early from one drained."""

    yielded: int = 0

    @classmethod
    def saying(cls, text: str) -> FakeChatModel:
        """A model that gives the same reply to every call."""
        return cls(messages=itertools.repeat(text))

    @property
    def _llm_type(self) -> str:
        return "ipl-fake"

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        reply = self._generate(messages, stop, run_manager, **kwargs).generations[0].message
        for word in re.findall(r"\S+\s*", str(reply.content)):
            self.yielded += 1
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=word))
            if run_manager:
                run_manager.on_llm_new_token(word, chunk=chunk)
            yield chunk

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[LanguageModelInput, AIMessage]:
        """The scripted replies are the model's answer whatever the tools: binding changes nothing."""
        return self

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[LanguageModelInput, Any]:
        """The next reply, read as JSON into `schema` (a pydantic model class, or a dict schema: a dict)."""
        def parse(reply: BaseMessage) -> Any:
            data = json.loads(str(reply.content))
            return schema.model_validate(data) if hasattr(schema, "model_validate") else data

        return self | RunnableLambda(parse)


class FailingChatModel(FakeChatModel):
    """Stands in for a remote model server that goes away mid-request (a dropped connection)."""

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        raise ConnectionResetError("model server went away")
        yield  # a generator, as a streaming client is


class HangingChatModel(FakeChatModel):
    """Stands in for a model server that answers only after `delay_s` (past a run's timeout)."""

    delay_s: float = 5.0

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        time.sleep(self.delay_s)
        yield from super()._stream(*args, **kwargs)


class GeneratorPlugin:
    """An ipl plugin that registers generator factories under the given names."""

    def __init__(self, factories: dict[str, Callable[[], FakeChatModel]]) -> None:
        self.factories = factories

    @hookimpl
    def register_generators(self, register: Callable[[str, Callable[..., Any]], None]) -> None:
        for name, factory in self.factories.items():
            register(name, lambda model="", base_url="", factory=factory: factory())


def generator_plugin(**factories: Callable[[], FakeChatModel]) -> GeneratorPlugin:
    """`plugins.register(generator_plugin(planted=lambda: FakeChatModel.saying("...")))`."""
    return GeneratorPlugin(factories)
