"""Truncation edge cases (sentence ends, numbers, CJK, accents, emoji) and the AI-disclosure line."""

from __future__ import annotations

import pytest

from helpers import runtime, write_policy
from ipl_graph.context import Context
from ipl_graph.state import State
from ipl_tools.truncate import cut, inside_number, splits_a_character, truncate


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        ("Short.", 10, "Short."),
        ("  padded text  ", 11, "padded text"),
        ("First sentence here. Second one is long.", 30, "First sentence here."),
        ('He said "great." Then more text follows', 20, 'He said "great."'),
        ("Really? Yes! Then a long tail follows here", 13, "Really? Yes!"),
        ("一二三。四五六七八九十。", 8, "一二三。"),
        ("好东西！便宜出，欢迎来问问", 6, "好东西！"),
        ("It weighs 3.5 kg. The rest is long", 12, "It weighs..."),  # never "It weighs 3."
        ("Price is 1,000,000 dollars ok", 14, "Price is..."),
        ("Open 12:30 to 18:00 daily", 16, "Open 12:30 to..."),
        ("A long line without a stop 123456789", 33, "A long line without a stop..."),
        ("Hi. " + "x" * 50 + " y", 30, "Hi."),  # no ellipsis after a sentence end
        ("Nice café items for sale", 12, "Nice café..."),  # accented Latin is not CJK
        ("Supercalifragilisticexpialidocious", 10, "Superca..."),  # one long word: cut, still marked
        ("1234567890123", 5, ""),  # nothing but a number: nothing safe to keep
        ("abc def", 0, ""),
    ],
)
def test_cut(text, limit, expected):
    result = cut(text, limit)
    assert result == expected and len(result) <= max(limit, 0)


def test_cut_keeps_cjk_whole_and_numbers_whole():
    chinese = "这是一件很好的衣服没有任何问题价格12345元可以小刀"
    short = cut(chinese, 20)
    assert len(short) <= 20 and short.endswith("…") and short[:-1] == chinese[: len(short) - 1]
    assert not short[:-1][-1].isdigit()  # stopped before 12345, not inside it


@pytest.mark.parametrize(
    "text",
    [
        "Caf\u00e9 cre\u0300me br\u00fble\u0301e and more",  # combining accents
        "Family \U0001f468\u200d\U0001f469\u200d\U0001f467 here",  # emoji joined by ZWJ
        "Flags \U0001f1ec\U0001f1e7\U0001f1eb\U0001f1f7\U0001f1e9\U0001f1ea end",  # regional-indicator pairs
        "Waves \U0001f44b\U0001f3fd\U0001f44b\U0001f3fd",  # skin-tone modifiers
    ],
)
def test_cut_never_splits_what_reads_as_one_character(text):
    for limit in range(1, len(text)):
        head = cut(text, limit).removesuffix("...").removesuffix("…")
        assert len(cut(text, limit)) <= limit
        assert text.startswith(head) and not splits_a_character(text, len(head)), (limit, head)
        assert not inside_number(text, len(head))


def test_disclosure_line_is_appended_within_the_limit(tmp_path):
    policy = write_policy(tmp_path, disclosure={"enabled": True}, limits={"max_description_chars": 100})
    long = "Selling my jacket, worn twice. " * 10
    update = truncate(State(description=long, title="Jacket"), runtime(Context(policy=policy)))
    line = "(Listing drafted with AI assistance from the seller's photos.)"
    assert update["description"].endswith(" " + line) and len(update["description"]) <= 100
    assert update["description"].startswith("Selling my jacket, worn twice.")
    zh = truncate(State(description="出闲置外套。", title="外套", lang="zh"), runtime(Context(policy=policy)))
    assert zh["description"] == "出闲置外套。（本描述由AI根据卖家照片辅助生成。）"


def test_no_disclosure_unless_the_policy_asks(tmp_path):
    update = truncate(State(description="Selling my jacket.", title="Jacket"), runtime(Context()))
    assert update["description"] == "Selling my jacket."
