"""Run-time knobs. Each run names its backends by string; plugins resolve the names.

The CLI and the eval set every field. Under `ipl serve` every field but `confirm` is the server's:
its flags decide them for all runs, and a request that names another is refused (ipl_graph/face/server.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(kw_only=True)
class Context:
    index_dir: str = field(
        default=".ipl-index",
        metadata={"description": "Folder of the persistent Chroma catalog index."},
    )
    policy: str = field(
        default="default",
        metadata={"description": "Policy name (a file in policies/) or a path to a policy YAML."},
    )
    embedder: str = field(
        default="efficientnet-lite0",
        metadata={"description": "Image embedder plugin used for categorize and visual search."},
    )
    ocr: str = field(default="rapidocr", metadata={"description": "OCR plugin; 'none' disables OCR."})
    nudity: str = field(
        default="auto",
        metadata={"description": "Nudity detector plugin: 'nudenet' (optional extra), 'none', or 'auto'."},
    )
    categorizer: str = field(default="knn-vote", metadata={"description": "Category plugin."})
    searcher: str = field(default="chroma", metadata={"description": "Visual-search plugin."})
    extractor: str = field(default="evidence", metadata={"description": "Attribute-extraction plugin."})
    generator: str = field(
        default="template",
        metadata={"description": "Chat-model plugin that writes the description: template, transformers, openai."},
    )
    model: str = field(default="", metadata={"description": "Model path or name for model-backed generators."})
    base_url: str = field(default="", metadata={"description": "OpenAI-compatible server URL for 'openai'."})
    generate_timeout_s: float = field(
        default=60.0, metadata={"description": "Seconds before generation is abandoned for a manual draft."}
    )
    top_k: int = field(default=10, metadata={"description": "Catalog neighbours fetched per query."})
    confirm: bool = field(
        default=False,
        metadata={"description": "Interrupt after attribute extraction so the seller confirms or edits."},
    )


def split_backend(name: str) -> tuple[str, str | None]:
    """(backend, its one argument or None): a backend name may carry an argument after a colon,
    `clip:/models/clip-vit-b32`."""
    base, colon, argument = name.partition(":")
    return base, argument if colon else None


def absolute_backend(name: str) -> str:
    """A backend name whose argument is a relative path (`clip:models/clip`) with that path made
    absolute, so that one name means one model whichever folder a command (or the server, or the
    warm worker serving several folders) runs in."""
    from pathlib import Path

    base, argument = split_backend(name)
    if argument is not None and Path(argument).expanduser().exists():
        return f"{base}:{Path(argument).expanduser().resolve()}"
    return name
