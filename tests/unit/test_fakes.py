"""The shared fake chat model does what graph tests ask of a chat model: streaming, `bind_tools`,
structured output."""

from __future__ import annotations

from langchain_core.messages import HumanMessage
from pydantic import BaseModel

from fakes import FakeChatModel


class Verdict(BaseModel):
    safe: bool
    reason: str


def test_streams_word_by_word_and_counts_what_it_yielded():
    model = FakeChatModel.saying("Ripe bananas, from my garden.")
    chunks = [c.content for c in model.stream([HumanMessage("write")])]
    # LangChain closes every stream with an empty chunk of its own
    assert chunks == ["Ripe ", "bananas, ", "from ", "my ", "garden.", ""] and model.yielded == 5
    assert model.invoke([HumanMessage("again")]).content == "Ripe bananas, from my garden."


def test_bind_tools_keeps_the_script_and_structured_output_parses_the_reply():
    model = FakeChatModel.saying('{"safe": false, "reason": "a knife"}')
    assert model.bind_tools([Verdict]).invoke("x").content.startswith("{")
    assert model.with_structured_output(Verdict).invoke("x") == Verdict(safe=False, reason="a knife")
