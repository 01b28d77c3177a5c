"""Benchmark the generators and moderation on this machine (not a test).

For each backend, streaming one listing's description from a Banana photo: time to first token and
tokens per second (median of --runs). `template` is the built-in writer; `transformers` is a tiny
random Qwen2-VL built on the spot (hidden size 64, two layers: it measures the plumbing, not a real
model); `openai` is ChatOpenAI against the SSE replay server on 127.0.0.1 (no delay between events:
client and protocol overhead only). Then moderation's cost per listing: the Guard's whole-text check
(the moderate_stream node) and the in-stream checks, in ms.

    python scripts/bench_generation.py [--runs 5] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tiny_vlm
CASSETTE = ROOT / "tests" / "cassettes" / "openai_chat_stream.json"
BANANA = ROOT / "samples" / "grocery" / "queries" / "Banana_001.jpg"


def stream_once(model, messages, **kwargs) -> tuple[float, float, list[str]]:
    """(seconds to the first chunk, seconds in all, chunks)."""
    started = time.perf_counter()
    first, chunks = None, []
    for chunk in model.stream(messages, **kwargs):
        if first is None:
            first = time.perf_counter() - started
        chunks.append(str(chunk.content))
    return first or 0.0, time.perf_counter() - started, chunks


def bench(name, model, messages, count_tokens, runs, **kwargs) -> None:
    stream_once(model, messages, **kwargs)  # warm-up
    results = [stream_once(model, messages, **kwargs) for _ in range(runs)]
    ttft = statistics.median(r[0] for r in results)
    tokens = count_tokens(results[0][2])
    rate = statistics.median(tokens / r[1] for r in results)
    chunks = len(results[0][2])
    print(f"{name:<18} {ttft * 1000:>9.1f} ms {rate:>9.0f} tok/s   ({tokens} tokens/reply, {chunks} chunks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()

    from ipl_graph import taming

    taming.apply()
    from ipl_graph.policies import load_policy
    from ipl_graph.schemas import Photo, Template
    from ipl_graph.state import State
    from ipl_tools.generate import build_messages
    from ipl_tools.generators.local_vlm import TransformersChatModel
    from ipl_tools.generators.openai_compat import openai_chat
    from ipl_tools.generators.replay_server import ReplayServer
    from ipl_tools.template_writer import TemplateChatModel
    from tiny_vlm import build  # tests/tiny_vlm.py: a test fixture, not in the wheel

    photo = Photo(path=str(BANANA), sha256="0" * 64, width=0, height=0)
    state = State(images=[photo], category="Banana", hint="ripe, from my garden", mode="image_template",
                  template=Template(category="Banana", attributes=[]))
    text_only = build_messages(state, with_images=False)
    with_photo = build_messages(state, with_images=True)
    words = len  # template and SSE chunks are one word / one token each
    print(f"generation, median of {args.runs} runs after a warm-up ({sys.platform}, 1 photo):")
    print(f"{'backend':<18} {'first token':>12} {'rate':>15}")
    bench("template", TemplateChatModel(), text_only, words, args.runs)

    with tempfile.TemporaryDirectory() as folder:
        model = TransformersChatModel.from_path(str(build(folder)))
        generated: list[int] = []
        generate = model._model.generate

        def counting(*a, **kw):  # the tokens generate() made: text re-tokenized would not count them right
            out = generate(*a, **kw)
            generated.append(out.shape[-1] - kw["input_ids"].shape[-1])
            return out

        model._model.generate = counting

        def model_tokens(chunks: list[str]) -> int:
            return generated[-1]

        bench(f"transformers*{model._model.device.type}", model, with_photo, model_tokens, args.runs,
              max_tokens=args.max_new_tokens, temperature=0.0)

    with ReplayServer(CASSETTE) as server:
        chat = openai_chat("qwen2.5-vl-3b-instruct", server.base_url)
        bench("openai-stub", chat, with_photo, words, args.runs, max_tokens=args.max_new_tokens)

    moderation(load_policy(), state, args.runs)
    hints(load_policy(), state, args.runs)


def moderation(policy, state, runs: int) -> None:
    from ipl_tools.moderate_stream import Grounding, StreamModerator, first_violation, guard
    from ipl_tools.template_writer import _tokens

    started = time.perf_counter()
    guard()
    print(f"\nmoderation (guardrails import and Guard build, once per process: {time.perf_counter() - started:.1f} s)")
    texts = [
        "Selling a bunch of bananas, ripe and ready to eat. They come from my garden and were picked this week. "
        "Message me if you're interested.",
        "Up for grabs: banana. Condition, in my words: ripe, from my garden. Happy to answer questions.",
        "出香蕉。成色：自家种的，刚摘。有问题欢迎私聊。",
        "Selling bananas. Text me on 0712 345 6789. They are sweet.",
    ]
    grounding = Grounding.of(state, policy)
    whole, streamed = [], []
    for _ in range(runs):
        for text in texts:
            t = time.perf_counter()
            first_violation(text, policy, grounding)
            whole.append(time.perf_counter() - t)
            moderator = StreamModerator(policy, grounding)
            t = time.perf_counter()
            for token in _tokens(text):
                if moderator.feed(token):
                    break
            streamed.append(time.perf_counter() - t)
    print(f"whole text (moderate_stream node): {statistics.median(whole) * 1000:.1f} ms per listing")
    print(f"in-stream checks (generate node):  {statistics.median(streamed) * 1000:.1f} ms per listing")


def hints(policy, state, runs: int) -> None:
    """The trust boundary's cost on a seller's hint of 1 KB, 10 KB and the policy's maximum: screening
    it at intake (every rule, four views) and the whole-text check of a description that quotes it
    (Guard + grounding, whose quantity lookup was quadratic). Every check is linear in the text."""
    from dataclasses import replace

    from ipl_tools.moderate_stream import Grounding, first_violation
    from ipl_tools.trust import screen

    unit = "Barely used, 2 x 500 ml bottles, size M, w e c h a t: abc123 no, pick up only. 九成新，自提。 "
    print("\nhint screening and whole-text checks (median of runs)")
    most = policy.limits.max_hint_chars
    for label, size in (("1 KB", 1000), ("10 KB", 10000), (f"max {most}", most)):
        hint = (unit * (size // len(unit) + 1))[:size]
        grounding = Grounding.of(replace(state, hint=hint), policy)
        took, whole = [], []
        for _ in range(runs):
            t = time.perf_counter()
            screen(hint, policy)
            took.append(time.perf_counter() - t)
            t = time.perf_counter()
            first_violation(hint.replace("w e c h a t: abc123 no", "no"), policy, grounding)
            whole.append(time.perf_counter() - t)
        print(f"{label:>10} hint: screen {statistics.median(took) * 1000:7.1f} ms,"
              f" whole-text check {statistics.median(whole) * 1000:7.1f} ms")
    for name, char in (("full stops", "."), ("spaces", " ")):
        runs_of(name, char, policy)


def runs_of(name: str, char: str, policy) -> None:
    """A catalog row's text (no length limit) made of one punctuation run: each rule is linear in it
    (50,000 full stops took 85 s in the injection rules before their separators were bounded)."""
    from ipl_tools.trust import row_problem

    line = []
    for size in (25_000, 50_000, 100_000):
        t = time.perf_counter()
        row_problem({"id": "r", "title": "Shirt", "description": char * size + "x"}, policy)
        line.append(f"{size:,}: {(time.perf_counter() - t) * 1000:.0f} ms")
    print(f"catalog row checked, a run of {name}: " + ", ".join(line))


if __name__ == "__main__":
    main()
