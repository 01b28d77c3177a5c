"""What a listing may state, and nothing else: the facts the writers (template and model) and the
stream moderator's fallback draft are built from."""

from __future__ import annotations

import re
from typing import Any

from ipl_graph.policies import Policy, load_policy
from ipl_graph.state import State
from ipl_tools.hint import kind_of, read_hint, shared_word


def facts_of(state: State, policy: Policy | None = None) -> dict[str, Any]:
    """Everything the description and title may state, and nothing else: the thing and its
    evidenced attributes, the trusted reference's own words, the seller's hint read into its parts,
    and how this kind of listing is written (sentence plan, title order, the language's voice)."""
    policy = policy or load_policy()
    product = state.trusted[0].title if state.trusted else None
    kind = kind_of([*(state.category_path or []), state.category or ""], policy.writing)
    facts: dict[str, Any] = {
        "lang": state.lang,
        "mode": state.mode,
        "category": named_category(state, policy),
        "thing": thing_word(state, policy),
        "product": product,
        "attributes": [[n, v] for n, v in state.attributes.items()],
        "seller_note": state.hint.strip(),
        "note": read_hint(state.hint, policy.writing, voice(policy, state).get("condition", [])),
        "kind": kind,
        "plan": policy.writing.plans.get(kind) or policy.writing.plans.get("default") or None,
        "title_order": policy.templates.title_order(state.category),
        "reference": reference_sentence(state),
    }
    if state.lang == "zh":
        facts["voice"] = voice(policy, state)
        facts["local"] = {v: words[-1] for v in state.attributes.values()
                          for name, words in policy.moderation.colours.items() if name == v and words}
    return facts


def thing_word(state: State, policy: Policy) -> str | None:
    """The word for the thing: the category the text may name, else the word the top catalog hits
    share (their categories, their names, then their category paths: 'Vegetables' for an unsure
    root), never a brand, an unnamed section, or the name of a category other than the one the
    listing states (a Juice guess too unsure to name is not called 'Milk' because three of the hits
    are milks); None when nothing offers one."""
    named = named_category(state, policy)
    if named:
        return named
    top = state.neighbours[:5]
    least = policy.writing.shared_word_min
    brands = [b for n in top if (b := n.attributes.get("Brand"))]
    sections = policy.generation.unnamed_categories
    unnamed = [*sections, *other_categories(state)]
    categories, paths = [n.category or "" for n in top], [" ".join(n.category_path) for n in top]
    word = shared_word(categories, least, unnamed)
    if word is None and shared_word(categories, least, sections):
        return shared_word(paths, least, unnamed)  # the hits are of another category: no flavour from their names
    return (word
            or shared_word([n.title or "" for n in top], least, [*brands, *unnamed])
            or shared_word(paths, least, unnamed))


def other_categories(state: State) -> set[str]:
    """The hits' categories other than the stated one, and their words ('Soy-Milk': 'soy', 'milk'),
    less the stated category's own words; none when no category is stated."""
    if not state.category:
        return set()
    def with_words(names: set[str]) -> set[str]:
        return names | {w for c in names for w in re.split(r"[\W_]+", c) if w}

    own = with_words({c.casefold() for c in [state.category, *state.category_path]})
    others = {c.casefold() for n in state.neighbours[:5] if (c := n.category) and c.casefold() not in own}
    return with_words(others) - own


def reference_sentence(state: State) -> str | None:
    """The trusted reference's own first sentence about the product, in its words and only in the
    listing's language (moderation then checks it against the evidence like any other)."""
    for ref in state.trusted[:1]:
        first = re.split(r"(?<=[.!?。！？])\s*", (ref.description or "").strip())[0]
        chinese = re.search(r"[\u3400-\u9fff]", first) is not None
        if 20 <= len(first) <= 200 and chinese == (state.lang == "zh"):
            return first
    return None


def voice(policy: Policy, state: State) -> dict[str, list[str]]:
    """The language's voice mined from real listings (`ipl mine-templates`, `voice:` in templates)."""
    mined = policy.templates.voice.get(state.lang) or {}
    return {key: phrases for key, phrases in mined.items() if phrases}


def named_category(state: State, policy: Policy | None = None) -> str | None:
    """The category the text may name: the leaf when the categorizer is sure enough of it (policy
    `name_category_min_confidence`), else the nearest broader category on its path ('Topwear' for a
    Tshirts-or-Sweaters guess) that is a name for the thing (not a section like 'Packages', policy
    `generation.unnamed_categories`), else none. The listing's category field keeps the leaf either way."""
    if not state.category:
        return None
    least = policy.thresholds.name_category_min_confidence if policy else 0.0
    if (state.category_confidence or 0.0) >= least:
        return state.category
    leaf = state.category.casefold().rstrip("s")
    unnamed = {c.casefold() for c in policy.generation.unnamed_categories} if policy else set()
    broader = (p for p in reversed(state.category_path or []) if p.casefold().rstrip("s") != leaf)
    return next((p for p in broader if p.casefold() not in unnamed), None)
