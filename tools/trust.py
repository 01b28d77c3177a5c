"""The trust boundary: every text from outside (catalog rows, reference values, OCR, the seller's hint
and edits) and every field of a listing is cleaned and checked here, with one set of rules.

`clean` makes a text safe to show (NFKC, control/zero-width/bidi/ANSI stripped). `problem` says why a
text may not be published, or None: contact details in their common evasions, off-platform lures,
instructions addressed to the model, claims of authenticity the evidence does not carry, prohibited
goods and banned terms. The rules are data in the policy (`moderation:` and `safety:`); this module
only reads each text in several views so that an evasion lands in at least one of them:

- plain: cleaned, case folded, look-alike letters (Cyrillic, Greek) folded to Latin, keycaps and
  variation selectors dropped, digits of every script as ASCII ("➊", "١");
- joined: letters or digits spelt out one by one ("w e c h a t", "1-3-8-0-0") joined up;
- leet: the joined view with digits and symbols read as the letters they stand in for ("w3ch@t"), and
  "vv" as "w";
- dotted: the joined view with a domain's dot put back where it was hidden ("cheap . biz", "cheap[.]com",
  "cheap. com", "c h e a p . c o m", "cheap!com", "cheapdotcom", "cheap com" all read "cheap.com"),
  read by the link and e-mail rules;
- digits: number words read as digits ("one three eight", "eins drei acht", 一三八, 幺洞洞), O and l next
  to digits as 0 and 1. A phone number may be cut by gaps and by list separators ("138,0013,8000"),
  unless its numbers read as sizes or a list ("38 39 40", "2019, 2020").

Every check is a single pass or a regular expression without nested repetition: linear in the text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from typing import Any

from ipl_graph.policies import ModerationPolicy, Policy

ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]{0,512}(?:\x07|\x1b\\)?|[@-Z\\-_])")
KEEP = {"\n", "\t"}
LOOKALIKES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ɡ": "g",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "χ": "x", "ω": "w", "ϲ": "c", "ℓ": "l", "ı": "i",
    # small capitals, which NFKC leaves alone ("ᴡᴇᴄʜᴀᴛ")
    **dict(zip("ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘǫʀꜱᴛᴜᴠᴡʏᴢ", "abcdefghijklmnopqrstuvwyz", strict=True)),
    # enclosed letters NFKC leaves alone: negative circled, negative squared, regional indicators (🅦🅔🅒)
    **{chr(first + i): chr(ord("a") + i) for first in (0x1F150, 0x1F170, 0x1F1E6) for i in range(26)},
    # variation selectors and enclosing marks only style the character before them: a keycap "1️⃣" is "1"
    **dict.fromkeys(map(chr, [*range(0xFE00, 0xFE10), *range(0x20DD, 0x20E5)])),
})
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
REPEATED_DIGIT = re.compile(r"(?<![a-z])(double|triple) ?(\d)")
"""A digit said twice or three times ("double zero", read as digits first): '00'."""
ACCENTS = re.compile(r"(?<=[a-z])[\u0300-\u036f]+")
"""Combining accents on a Latin letter (after NFD): read 'é' as 'e'; other scripts' marks stay."""
SPELT_OUT = re.compile(r"(?<![^\W_])(?:[^\W_][\W_]{1,3}){2,}[^\W_](?![^\W_])")
"""Three or more single letters or digits with separators between them: 'w e c h a t', '1.3.8'."""
SEPARATORS = re.compile(r"[\W_]+")
PHONE_GAP = " -.()/+_*~·|\\[]{}'\"–—‒―•‧∙"
"""What may stand between the digits of a phone number ('138-0013 8000', '(0)20 7946', '138–0013')."""
LIST_GAP = ",;:、\n"
"""What may stand between the digits of a phone number too, and between the numbers of a list ('138,0013,8000',
'+44, 7700, 900123' but 'Model year 2019, 2020'): a run across one is no phone number when its numbers read
as a list of values (`listed`)."""
DIGIT_RUN = re.compile(rf"[0-9]+(?:[{re.escape(PHONE_GAP + LIST_GAP)}]{{1,3}}[0-9]+)*")
"""Digits with gaps of at most three of those characters between them."""
LIST_SEPARATOR = re.compile(rf"[{re.escape(LIST_GAP)}]")
DIGITS = re.compile(r"[0-9]+")

YEAR, MONTH, DAY = r"(?:19|20)\d\d", r"(?:0?[1-9]|1[0-2])", r"(?:0?[1-9]|[12]\d|3[01])"
DATE = re.compile(rf"(?<!\d)(?:{YEAR}([-./]){MONTH}\1{DAY}|{DAY}([-./]){MONTH}\2{YEAR})(?!\d)")
"""A calendar date ('best before 2024-10-12'), which is no phone number."""
TIME = re.compile(r"(?<!\d)(?:[01]?\d|2[0-3]):[0-5]\d(?!\d)")
"""A time of day ('pick up 10:30-12:00'), which is no phone number either."""
THOUSANDS = re.compile(r"(?<![\d,])\d{1,3}(?:,\d{3}){1,2}(?![\d]|,\d)")
"""A number of at most nine digits with thousands separators ('1,299', '12,500,000'): one number. Longer
ones stay digits ('13,800,138,000' is a mobile number)."""
DECIMAL_COMMA = re.compile(r"(?<![\d.,])(0|[1-9]\d{0,3}),(\d{1,2})(?![\d]|[.,]\d)")
"""A decimal comma ('EU 38,5', '12,50'), read as a decimal point: no list separator."""
NUMBER = re.compile(r"(?:0|[1-9][0-9]{0,3})\.[0-9]{1,2}(?![0-9])|[0-9]+")
"""A number, with its decimal part if it has one ('38.5 39 39.5' is a run of sizes)."""
DOT = r"(?:\.|。|点|\(dot\)|\[dot\]|\{dot\}| dot )"
AT_SIGN = r" ?(?:@|\(at\)|\[at\]|\{at\}) ?"
AT_WORD = r" (?:at|arroba|arobase) | ?(?:艾特|小老鼠) ?"
"""The at sign said in a word: English, Spanish and Portuguese, French, Chinese ('bob arroba gmail')."""
MAIL_DOT = r"(?:\.|。|点|\(dot\)|\[dot\]|\{dot\}| (?:dot|punto|point|punkt) )"
"""A dot said in a word, as in an address after an at sign ('gmail punto com'): the words of other
languages only there, where they can mean nothing else ('punto de venta' is no domain)."""
MAIL_HOSTS = (rf"(?:{AT_SIGN}|{AT_WORD})(?:gmail|googlemail|hotmail|yahoo|icloud|protonmail|foxmail|yandex)"
              rf"|{AT_SIGN}(?:outlook|proton|qq|163|126|aol|gmx)")
"""Mail services an address names without its domain ("bob at gmail", "bob(at)qq"); those whose names
are words or numbers ("good at outlook", "at 163 Main Street") only after an at sign."""
NO_WORD_TLDS = "com|org|cn|io|biz|xyz|ru|de|fr|ly|gg|cc|hk|tw|icu|pw|ws|su"
"""Top-level domains that are no English word: "cheap. com" is a domain, "in the box. me too" is not."""
NO_WORD_ANYWHERE = "com|biz|xyz|icu"
"""Top-level domains that follow a word as a word almost nowhere: "cheap com" is a domain ("org" is not
one of them: "ADIDAS Unisex Org City Corp Black Bag", a fashion catalog title)."""
STAND_IN = r"(?:[^\w\s.。]|_)"
"""A character written where a domain's dot goes: punctuation, a symbol, an emoji ("cheap!com", "cheap·com")."""
HIDDEN_DOT = re.compile(
    r"(?<!\s)\s{0,3}[\[({]\s{0,3}(?:\.|。|dot)\s{0,3}[\])}]\s{0,3}"  # bracketed: "cheap[.]com", "cheap ( . ) com"
    r"|(?<=[^\W_])\s+[.。点]\s*(?=[^\W_])"  # a space before the dot, which no sentence puts there
    rf"|(?<=[^\W_])[.。]\s+(?=(?:{NO_WORD_TLDS})(?![a-z0-9-]))"
    rf"|(?<=[a-z0-9])\s*[.。]{{2,}}\s*(?=(?:{NO_WORD_TLDS})(?![a-z0-9-]))"  # "cheap..com", "cheap ... com"
    rf"|(?<=[a-z0-9]){STAND_IN}{{1,3}}(?=(?:{NO_WORD_TLDS})(?![a-z0-9-]))"  # "cheap!com", "cheap_com", "cheap·com"
    # "cheap com", "cheap , com"
    rf"|(?<=[a-z0-9])(?:\s+(?:{STAND_IN}{{1,3}}\s*)?|{STAND_IN}{{1,3}}\s+)(?=(?:{NO_WORD_ANYWHERE})(?![a-z0-9-]))"
    r"|(?<=[a-z0-9]{2})\s?dot\s?(?=(?:com|org|net|biz|xyz)(?![a-z0-9-]))"  # "cheapdotcom", "cheap dotcom"
)
"""A domain's dot written so that the link rule would not see it. After a full stop and a space only
top-level domains that are no English word count ("cheap. com", not "in the box. me too"); after
other punctuation, or a symbol, the same; after a space alone only those that follow a word as a
word almost nowhere ("cheap com", not "chocolate net weight")."""
AT = rf"(?:@|\(at\)|\[at\]|\{{at\}}|{AT_WORD})"


def clean(text: str) -> str:
    """`text` as a listing may hold it: ANSI escapes, control, zero-width and bidi characters removed.
    Full-width punctuation stays (Chinese text needs it); the rules read the NFKC form (`views`)."""
    text = ANSI.sub("", text)
    return "".join(c for c in text if c in KEEP or unicodedata.category(c) not in {"Cc", "Cf", "Cs", "Co", "Cn"})


@dataclass(frozen=True)
class Views:
    """One text read four ways (see the module docstring)."""

    plain: str
    joined: str
    leet: str
    digits: str
    dotted: str

    def all(self) -> tuple[str, ...]:
        return self.plain, self.joined, self.leet, self.dotted


def _plain(text: str) -> str:
    """NFKC, case folded, look-alikes folded, digits of any script as ASCII ('➊', '١'), and Latin
    letters' accents dropped ('wé chat')."""
    text = unicodedata.normalize("NFKC", clean(text)).casefold().translate(LOOKALIKES)
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", ACCENTS.sub("", unicodedata.normalize("NFD", text))).translate(_ascii_digits())


@lru_cache(maxsize=1)
def _ascii_digits() -> dict[int, int]:
    """A `str.translate` table: every digit of another script ('١', '➊'; 778 of them) as its ASCII
    digit. Built once, when a text first needs it (70 ms)."""
    return {c: ord(str(unicodedata.digit(chr(c)))) for c in range(0x80, 0x110000) if chr(c).isdigit()}


def views(text: str, policy: ModerationPolicy) -> Views:
    """The four views of `text` (memoised: each rule of a sentence reads the same views)."""
    key = (text, id(policy))
    if key not in _VIEWS:
        if len(_VIEWS) > 256:
            _VIEWS.clear()
        _VIEWS[key] = _views(text, policy)
    return _VIEWS[key]


_VIEWS: dict[tuple[str, int], Views] = {}


def _views(text: str, policy: ModerationPolicy) -> Views:
    plain = _plain(text)
    joined = SPELT_OUT.sub(_joined_run, plain)
    dotted = SPELT_OUT.sub(_spelt_with_dots, HIDDEN_DOT.sub(".", plain))
    return Views(plain, joined, joined.translate(LEET).replace("vv", "w"), _as_digits(plain, policy), dotted)


def _joined_run(run: re.Match[str]) -> str:
    """A spelt-out run joined up ('w e c h a t', '1-3-8'), unless it is single numbers in a list or a
    size run ('5, 6, 7, 8, 9, 10', 'UK 5 6 7 8 9'): the digits view reads those as they are."""
    text = run.group()
    joined = SEPARATORS.sub("", text)
    items = LIST_SEPARATOR.split(text)
    if joined.isdigit() and (sizes(list(joined)) or len(items) == len(joined)):  # a digit between each two
        return text
    return joined


def _spelt_with_dots(run: re.Match[str]) -> str:
    """A spelt-out run joined up, a dot kept where a separator unlike the run's usual one holds one:
    "c h e a p . c o m" and "c-h-e-a-p.c-o-m" read "cheap.com", "a.0.0.0.0.0" reads "a00000"."""
    text = run.group()
    usual = Counter(SEPARATORS.findall(text)).most_common(1)[0][0]
    return SEPARATORS.sub(lambda m: "." if m.group() != usual and ("." in m.group() or "。" in m.group()) else "", text)


def _as_digits(text: str, policy: ModerationPolicy) -> str:
    if not policy.number_words:
        return text
    words, word, digit = _number_words(tuple(sorted(policy.number_words.items())))
    text = words.sub(lambda m: word.sub(lambda w: digit[w.group()], m.group()), text)
    text = REPEATED_DIGIT.sub(lambda m: m.group(2) * (2 if m.group(1) == "double" else 3), text)  # "double 0"
    # a run of O or l touching a digit and no other letter: "077OO9OO123", "O7700"
    return re.sub(r"(?<![a-z])[ol]+(?=\d)|(?<=\d)[ol]+(?![a-z])",
                  lambda m: m.group().replace("o", "0").replace("l", "1"), text)


@lru_cache(maxsize=8)
def _number_words(items: tuple[tuple[str, str], ...]) -> tuple[re.Pattern[str], re.Pattern[str], dict[str, str]]:
    """(number words as one pattern, one number word, the digit of each): Latin words of three letters
    or more as a word made of them only, run together or not ('one three', 'onethreeeight'; not the
    'one' of 'iPhone 12, 13', nor 'acht' of 'yacht'), shorter ones ('oh', 'un') as whole words, CJK
    numerals as written. Read in their plain view ('fünf' as 'funf')."""
    digit = {_plain(w): d for w, d in items}
    latin = sorted((w for w in digit if w.isascii()), key=len, reverse=True)
    long = "|".join(re.escape(w) for w in latin if len(w) >= 3)
    short = [rf"(?<![a-z]){re.escape(w)}(?![a-z])" for w in latin if len(w) < 3]
    other = [re.escape(w) for w in digit if not w.isascii()]
    parts = [*([rf"(?<![a-z])(?:{long})+(?![a-z])"] if long else []), *short, *other]
    word = "|".join(re.escape(w) for w in sorted(digit, key=len, reverse=True))
    return re.compile("|".join(parts)), re.compile(word), digit


# --- the rules ---------------------------------------------------------------------------------


def phone_number(text: str, min_digits: int) -> bool:
    """Whether `text` (a view: its digits ASCII) holds `min_digits` digits in a run broken only by short
    gaps of spaces or punctuation. Dates, times and thousands are not runs, nor a run of sizes ('38 39
    40 41', '36/38/40/42'). Numbers split by list separators alone are one run unless they read as a
    list ('138,0013,8000' but not '2019, 2020', `listed`); others are read apart ('Pack of six 250, 500'
    has no run of seven). Each run is read once: linear."""
    text = DATE.sub(" date ", text)
    text = DECIMAL_COMMA.sub(r"\1.\2", THOUSANDS.sub(" number ", TIME.sub(" time ", text)))
    for run in DIGIT_RUN.finditer(text):
        if sum(map(str.isdigit, run.group())) < min_digits:
            continue
        parts = [p for part in LIST_SEPARATOR.split(run.group()) if (p := part.strip(PHONE_GAP))]
        if all(part.isdigit() for part in parts):
            if not sizes(parts) and not listed(parts, plus=text[run.start() - 1 : run.start()] == "+"):
                return True
        elif any(sum(map(str.isdigit, part)) >= min_digits and not sizes(NUMBER.findall(part)) for part in parts):
            return True
    return False


def sizes(numbers: list[str]) -> bool:
    """Numbers of at most three digits that step up by the same 0.5 to 10 (a size run: '38 39 40 41',
    '110/120/130/140', '38.5 39 39.5'): no way to spell a phone."""
    if any(len(n.partition(".")[0]) > 3 for n in numbers):
        return False
    steps = {round(float(b) - float(a), 2) for a, b in zip(numbers, numbers[1:], strict=False)}
    return len(steps) == 1 and 0 < min(steps) <= 10


def listed(numbers: list[str], plus: bool) -> bool:
    """Whether numbers split by list separators read as a list of values ('2019, 2020', '110, 116, 122',
    '6, 12, 24, 48'), not a phone number cut up ('138,0013,8000', '+44, 7700, 900123', '138, 1234, 5678'):
    no plus sign before them, no leading zero, and each no shorter than the one before, and within five
    times it."""
    if len(numbers) < 2 or plus or any(len(n) > 1 and n[0] == "0" for n in numbers):
        return False
    for a, b in zip(numbers, numbers[1:], strict=False):
        low, high = sorted((int(a), int(b)))
        if not (0 <= len(b) - len(a) <= 1 and low > 0 and high <= 5 * low):
            return False
    return True


_COMPILED: dict[int, tuple[ModerationPolicy, dict[str, re.Pattern[str]]]] = {}


def _compiled(policy: ModerationPolicy) -> dict[str, re.Pattern[str]]:
    """The policy's word lists as regular expressions, built once per policy object (policies are
    loaded once and kept, `load_policy`)."""
    cached = _COMPILED.get(id(policy))
    if cached is None or cached[0] is not policy:
        cached = _COMPILED[id(policy)] = (policy, _compile(policy))
    return cached[1]


def _compile(policy: ModerationPolicy) -> dict[str, re.Pattern[str]]:
    tlds = "|".join(sorted(policy.link_tlds, key=len, reverse=True))
    return {
        "messenger": _messengers(policy.messengers),
        "e-mail address": re.compile(
            rf"(?<![a-z0-9._%+-])[a-z0-9._%+-]+ ?{AT} ?[a-z0-9-]+(?: ?{MAIL_DOT} ?[a-z0-9-]+)*?"
            rf" ?{MAIL_DOT} ?(?:{tlds})(?![a-z])"
            rf"|(?<![a-z0-9._%+-])[a-z0-9._%+-]+(?:{MAIL_HOSTS})(?![a-z0-9])"
        ),
        "link": re.compile(
            rf"(?:h[tx]{{2}}ps?|ftp) ?: ?//|www ?{DOT}|(?<![a-z0-9-])(?:t|wa) ?{DOT}? ?me ?(?:/| slash )"
            # a host and a path, whatever its top-level domain: "bit.ly/x", "rb.gy/x", "m.me/x", "linktr.ee/x"
            rf"|(?<![a-z0-9-])[a-z0-9-]+{DOT}[a-z]{{2,6}} ?(?:/| slash ) ?[a-z0-9_]"
            # a bare domain by its last two labels, each label read once ("a.b.a.b..." was quadratic): "cheap.com",
            # "seller dot com", and a label of one letter after a dot ("shop.a.co")
            rf"|(?<![a-z0-9-])(?:[a-z0-9-]{{2,}}|(?<=[a-z0-9-]\.)[a-z0-9-])"
            rf"(?:{DOT}| ?\(dot\) ?| ?\[dot\] ?| dot )(?:{tlds})(?![a-z0-9-])"
        ),
        "handle": re.compile(r"@[a-z][a-z0-9_.]{2,}"),  # "@seller_bob", "bob@gmail": no listing needs one
        "lure": _phrases(policy.lures),
        "injection": _phrases(policy.injections),
        "authenticity": _phrases(policy.authenticity),
    }


SHORT_NAME_ID = r"(?=(?:[\W_]{1,3}id[\W_]{1,3}|[\W_]{0,3}号[\W_]{0,3}|[\W_]{1,3})(?=[a-z0-9_]{5})[a-z_]+\d)"
"""What must follow a short messenger name spelt out ('v x'): an id of 5+ letters and digits, a letter first."""


def _messengers(names: Iterable[str]) -> re.Pattern[str]:
    """Messengers' names as one pattern: spelt out with separators for Latin names of four letters or
    more, as a whole word for short ones ('qq', 'vx'), as written or split by separators for CJK."""
    latin: list[str] = []
    cjk: list[str] = []
    for name in (_plain(n) for n in names):  # as the text is read: "ватсап" folds to "batcaп"
        if not name.isascii():  # CJK: as written, or split by a few separators ("威 信")
            cjk.append(r"[\W_]{0,3}".join(re.escape(c) for c in name if not c.isspace()))
        elif (letters := [c for c in name if c.isalnum()]) and len(letters) >= 4:
            latin.append(r"[\W_]{0,3}".join(re.escape(c) for c in letters))
        elif letters:  # 'vx', or 'v x' / 'w-x' before an id of letters then digits ('v x abc12345', not 'v x large')
            latin.append(re.escape("".join(letters)))
            latin.append(r"[\W_]{1,2}".join(re.escape(c) for c in letters) + SHORT_NAME_ID)
    # a name ends its word, or runs into an id with a digit ("wechatabc12345", a zero-width space removed)
    return re.compile("|".join(([_words(latin, r"(?:(?![a-z])|(?=[a-z_]{0,16}\d))")] if latin else []) + cjk)
                      or r"(?!)")


def _words(alternatives: list[str], after: str = "") -> str:
    """Alternatives that start a word, as one pattern. The start is tested once, before them all: a
    look-behind on each alternative hides from the regex engine which letters can start a match, so
    it tried every alternative at every position (a catalog row's checks took 14x as long)."""
    return rf"(?<![a-z0-9])(?:{'|'.join(alternatives)}){after}"


SEPARATOR_RUN = {False: r"[\W_]{1,8}", True: r"[\W_]{0,8}"}
"""A policy phrase's space, and its optional space ("gift ?cards?"): bounded, so that a long run of
punctuation costs each position a few steps, not the rest of the run (50,000 full stops took 85 s)."""


def _phrases(entries: Iterable[str]) -> re.Pattern[str]:
    """Policy phrases as one pattern: a space matches a run of spaces or punctuation (`SEPARATOR_RUN`)."""
    parts = [re.sub(r" ([?*])?", lambda m: SEPARATOR_RUN[bool(m.group(1))], e.casefold()) for e in entries]
    return re.compile(_words(parts) if parts else r"(?!)")


CONTACT_LABELS = {"messenger": "messenger id", "handle": "social handle"}


def contact(v: Views, policy: ModerationPolicy, phones: bool = True) -> str | None:
    """'contact details (...)' when the text gives a way to reach the seller off the platform."""
    if not policy.contact_patterns:
        return None
    if phones and any(phone_number(t, policy.min_phone_digits) for t in (v.digits, v.joined)):
        return "contact details (phone number)"
    rules = _compiled(policy)
    for label in ("e-mail address", "link", "messenger", "handle"):
        if any(rules[label].search(t) for t in v.all()):
            return f"contact details ({CONTACT_LABELS.get(label, label)})"
    if any(rules["lure"].search(t) for t in v.all()):
        return "contact details (off-platform lure)"
    return None


def injection(v: Views, policy: ModerationPolicy) -> str | None:
    found = next((m for t in v.all() if (m := _compiled(policy)["injection"].search(t))), None)
    return f"instruction to the model: {found.group().strip()!r}" if found else None


def authenticity(v: Views, policy: ModerationPolicy, evidence: str = "") -> str | None:
    """A claim of authenticity, unless `evidence` (a trusted reference's own text) makes one too."""
    rule = _compiled(policy)["authenticity"]
    found = next((m for t in v.all() if (m := rule.search(t))), None)
    if found is None or rule.search(views(evidence, policy).plain):
        return None
    return f"unsupported claim of authenticity: {found.group().strip()!r}"


def listed_term(v: Views, terms: tuple[str, ...]) -> str | None:
    """The first of `terms` in the text: whole words for Latin script, substrings for CJK; the words of
    a term may be run together or split by punctuation ('replica-watch'). A word written {a|b} is
    either of them ('{fake|replica} {rolex|nike}' reads 'fake rolex' and 'replica-nike')."""
    pattern, by_key = _terms(terms)
    found = next((m for text in (v.plain, v.joined) if (m := pattern.search(text))), None)
    return by_key.get(SEPARATORS.sub("", found.group())) if found else None


TERM_WORD = re.compile(r"\{[^{}]*\}|[^\s{}]+")
"""A word of a listed term: a plain word, or alternatives in braces ('{fake|replica}')."""


@lru_cache(maxsize=32)
def _terms(terms: tuple[str, ...]) -> tuple[re.Pattern[str], dict[str, str]]:
    latin: list[str] = []
    cjk: list[str] = []
    by_key: dict[str, str] = {}
    for term in sorted(terms, key=len, reverse=True):
        words = [_alternatives(w) for w in TERM_WORD.findall(_plain(term))]
        body = r"[\W_]*".join(_either(alternatives) for alternatives in words)
        (latin if body.isascii() else cjk).append(body)
        for spelling in product(*words):  # what each spelling of the term is reported as
            by_key.setdefault(SEPARATORS.sub("", "".join(spelling)), " ".join(spelling) if "{" in term else term)
    return re.compile("|".join(([_words(latin, r"(?![a-z0-9])")] if latin else []) + cjk) or r"(?!)"), by_key


def _alternatives(word: str) -> list[str]:
    """'{fake|knock off}' as ['fake', 'knock off'], 'replica' as ['replica']."""
    return [a.strip() for a in word[1:-1].split("|") if a.strip()] if word.startswith("{") else [word]


def _either(alternatives: list[str]) -> str:
    """Any of `alternatives` (words that may be run together or split by punctuation) as a pattern."""
    parts = [r"[\W_]*".join(map(re.escape, a.split())) for a in sorted(alternatives, key=len, reverse=True)]
    return parts[0] if len(parts) == 1 else f"(?:{'|'.join(parts)})"


def problem(text: str, policy: Policy, evidence: str = "", phones: bool = True) -> str | None:
    """Why `text` may not be published anywhere in a listing, or None. `evidence` is what trusted
    references say themselves (it alone can support a claim of authenticity); `phones=False` for
    catalog ids, whose digits are no phone number."""
    if not text or not text.strip():
        return None
    v = views(text, policy.moderation)
    if term := listed_term(v, tuple(policy.moderation.banned_terms)):
        return f"banned term: {term!r}"
    if term := listed_term(v, tuple(policy.safety.prohibited_keywords)):
        return f"prohibited item: {term!r}"
    return (contact(v, policy.moderation, phones) or injection(v, policy.moderation)
            or authenticity(v, policy.moderation, evidence))


def prohibited(texts: Iterable[str], policy: Policy) -> str | None:
    """The first prohibited keyword in any of `texts`, read through the same views."""
    keywords = tuple(policy.safety.prohibited_keywords)
    return next((t for text in texts if (t := listed_term(views(text, policy.moderation), keywords))), None)


# --- applying them -----------------------------------------------------------------------------

CLAUSE = re.compile(r"[^\n.!?;。！？；]*(?:[\n.!?;。！？；]+|$)")


def screen(text: str, policy: Policy, limit: int | None = None) -> tuple[str, list[str]]:
    """(what of an outside text may be used, why the rest was dropped): cleaned, cut to `limit`
    characters, sentences with a problem dropped; all of it when what is left still has one (an
    evasion spread over several sentences)."""
    text = clean(text)[: limit or None].strip()
    sentences = [s for s in CLAUSE.findall(text) if s.strip()]
    keep, dropped = _kept(sentences, policy)
    result = "".join(s for s, k in zip(sentences, keep, strict=True) if k).strip()
    if result and (reason := problem(result, policy)):
        return "", [*dropped, reason]
    return result, dropped


FIRST_WORDS = re.compile(r"^\s*\S+(?:\s+\S+)?")
LAST_WORDS = re.compile(r"(?:\S+\s+)?\S+\s*$")
ID_FIRST = re.compile(r"\s*[@#]?(?=[a-z0-9_.-]*[a-z])(?=[a-z0-9_.-]*\d)[a-z0-9_.-]{5,}(?![a-z0-9_.-])")
"""A sentence that starts with an id: letters and digits mixed, 5 or more ("abc12345 thanks")."""


def screen_lines(lines: list[str], policy: Policy) -> tuple[list[str], list[str]]:
    """(the lines that may be used, why the others were dropped): `screen`'s rules for text read line by
    line (OCR), a line being a sentence: one with a problem is dropped, and so is one beside it that
    completes it ("WeChat" then "abc12345")."""
    keep, dropped = _kept([f"{line} " for line in lines], policy)
    kept = [line for line, k in zip(lines, keep, strict=True) if k]
    # an evasion spread over lines: none is used. Not for digits: a pack's numbers on separate lines
    # ('180', '1660') read as a phone number; one that reaches a field is stopped there
    if kept and (reason := problem(" ".join(kept), policy, phones=False)):
        return [], [*dropped, reason]
    return kept, dropped


def _kept(pieces: list[str], policy: Policy) -> tuple[list[bool], list[str]]:
    """Per piece of an outside text (a sentence, a line), whether it may be used, and why the others
    may not: a piece with a problem, and one beside it that completes it (`_completes`)."""
    reasons = [problem(piece, policy) for piece in pieces]
    keep = [reason is None and not _completes(piece, pieces, reasons, i, policy)
            for i, (piece, reason) in enumerate(zip(pieces, reasons, strict=True))]
    return keep, [r for r in reasons if r]


def _completes(sentence: str, sentences: list[str], reasons: list[str | None], i: int, policy: Policy) -> bool:
    """Whether a sentence without a problem makes one with the nearest words of a dropped neighbour
    that they do not make alone: it holds the start or the end of what was dropped ("visit
    bestdeals!" before "com, or add v x abc12345", which is dropped for the messenger id)."""
    for j, edge in ((i - 1, LAST_WORDS), (i + 1, FIRST_WORDS)):
        if 0 <= j < len(sentences) and reasons[j] and (words := edge.search(sentences[j])):
            joined = words.group() + sentence if j < i else sentence + words.group()
            if problem(joined, policy) and not problem(words.group(), policy):
                return True
    after_contact = i > 0 and (reasons[i - 1] or "").startswith("contact details")
    return after_contact and ID_FIRST.match(_plain(sentence)) is not None  # "wechat." then "abc12345 thanks."


def neighbour_problem(neighbour: Any, policy: Policy) -> str | None:
    """`row_problem` of a catalog hit (a `schemas.Neighbour`): an index built before quarantine may
    still hold a poisoned row; it is no reference either. Memoised: the same rows come back often."""
    row = neighbour.model_dump(include={"id", "title", "description", "category", "category_path", "attributes"})
    key = (json.dumps(row, sort_keys=True, ensure_ascii=False), id(policy))
    if key not in _ROWS:
        if len(_ROWS) > 4096:
            _ROWS.clear()
        _ROWS[key] = row_problem(row, policy)
    return _ROWS[key]


_ROWS: dict[tuple[str, int], str | None] = {}


def row_problem(row: dict[str, Any], policy: Policy) -> str | None:
    """Why a catalog row may not be used as a reference (quarantined at index time), or None. A
    catalog's own claim of authenticity is allowed: it is the evidence a listing's claim needs."""
    if isinstance(row.get("id"), str) and (reason := problem(row["id"], policy, phones=False)):
        return reason
    texts: list[Any] = [row.get("title"), row.get("description"), row.get("category"),
                        *(row.get("category_path") or [])]
    attributes = row.get("attributes") or {}
    if isinstance(attributes, dict):
        texts += [f"{k}: {v}" for k, v in attributes.items()]
    text = "\n".join(v for v in texts if isinstance(v, str))  # one pass: a newline ends every run and phrase
    return problem(text, policy, evidence=text)
