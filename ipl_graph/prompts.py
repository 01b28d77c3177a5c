"""Load prompts from the wheel's `ipl_prompts` package and render them with declared variables.

A prompt file starts with a header line `# variables: a, b, c`; rendering checks the caller passes
exactly those, so a prompt and its node cannot drift apart silently.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from string import Formatter

HEADER = "# variables:"


@lru_cache(maxsize=32)
def load_prompt(name: str) -> tuple[tuple[str, ...], str]:
    """(declared variables, template body) of `prompts/<name>.txt`."""
    text = resources.files("ipl_prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")
    first, _, body = text.partition("\n")
    if not first.startswith(HEADER):
        raise ValueError(f"prompt {name!r} must start with '{HEADER} ...'")
    declared = tuple(v.strip() for v in first[len(HEADER):].split(",") if v.strip())
    used = {field for _, field, _, _ in Formatter().parse(body) if field}
    if used != set(declared):
        raise ValueError(f"prompt {name!r} declares {sorted(declared)} but uses {sorted(used)}")
    return declared, body.strip()


def render(name: str, **variables: object) -> str:
    declared, body = load_prompt(name)
    if set(variables) != set(declared):
        raise ValueError(f"prompt {name!r} takes {sorted(declared)}, got {sorted(variables)}")
    return body.format(**variables)


def prompt_names() -> list[str]:
    return sorted(
        p.name[:-4] for p in resources.files("ipl_prompts").iterdir() if p.name.endswith(".txt")
    )
