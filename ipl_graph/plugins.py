"""The plugin manager: built-ins and entry-point plugins, and lookup of a backend by name."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, cast

import pluggy

from ipl_graph import hookspecs
from ipl_graph.context import split_backend
from ipl_graph.errors import UnknownBackendError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from ipl_graph.backends import Categorizer, Embedder, Extractor, NudityDetector, OCREngine, Searcher

KINDS = {
    "embedder": "register_embedders",
    "ocr": "register_ocr_engines",
    "nudity": "register_nudity_detectors",
    "categorizer": "register_categorizers",
    "searcher": "register_searchers",
    "extractor": "register_extractors",
    "generator": "register_generators",
}

pm = pluggy.PluginManager("ipl")
pm.add_hookspecs(hookspecs)
_lock = threading.RLock()
_loaded = False
_instances: dict[tuple[str, str, Hashable], Any] = {}


def _ensure_loaded() -> None:
    global _loaded
    with _lock:
        if _loaded:
            return
        from ipl_graph import builtins

        pm.register(builtins, name="ipl.builtins")
        pm.load_setuptools_entrypoints("ipl")
        _loaded = True


def factories(kind: str) -> dict[str, Callable[..., Any]]:
    """All registered factories of one kind, by name."""
    _ensure_loaded()
    found: dict[str, Callable[..., Any]] = {}
    getattr(pm.hook, KINDS[kind])(register=lambda name, factory: found.__setitem__(name, factory))
    return found


def get(kind: str, name: str, *args: Hashable) -> Any:
    """The backend `name` of `kind`, built once per distinct args; unknown names list the known ones.
    A name may carry its backend's one argument after a colon: `clip:/models/clip-vit-b32`."""
    if not args:
        name, argument = split_backend(name)
        args = () if argument is None else (argument,)
    with _lock:
        key = (kind, name, args)
        if key not in _instances:
            known = factories(kind)
            if name not in known:
                raise UnknownBackendError(
                    f"unknown {kind} {name!r}; known: {', '.join(sorted(known)) or 'none'}"
                )
            try:
                inspect.signature(known[name]).bind(*args)
            except TypeError:
                raise UnknownBackendError(f"{kind} {name!r} takes {'no argument' if args else 'an argument'}"
                                          f" ({name}:ARGUMENT for one)") from None
            _instances[key] = known[name](*args)
        return _instances[key]


# Typed getters: a node asks for its backend by kind and gets the kind's contract (`backends.py`).


def searcher(name: str, index_dir: str, embedder_name: str) -> Searcher:
    return cast("Searcher", get("searcher", name, index_dir, embedder_name))


def embedder(name: str) -> Embedder:
    return cast("Embedder", get("embedder", name))


def ocr(name: str) -> OCREngine:
    return cast("OCREngine", get("ocr", name))


def nudity(name: str) -> NudityDetector:
    return cast("NudityDetector", get("nudity", name))


def categorizer(name: str) -> Categorizer:
    return cast("Categorizer", get("categorizer", name))


def extractor(name: str) -> Extractor:
    return cast("Extractor", get("extractor", name))


def generator(name: str, model: str = "", base_url: str = "") -> BaseChatModel:
    return cast("BaseChatModel", get("generator", name, model, base_url))


def register(plugin: object, name: str | None = None) -> str | None:
    """Register a plugin object (tests and embedding apps); returns its name for `unregister`."""
    _ensure_loaded()
    _instances.clear()
    return pm.register(plugin, name=name)


def unregister(name: str) -> None:
    pm.unregister(name=name)
    _instances.clear()
