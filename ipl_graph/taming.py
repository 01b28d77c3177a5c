"""Library taming, in one place: what keeps the libraries IPL uses offline, quiet and quick to import.

- `DEFAULTS` / `apply()`: environment defaults that stop background network calls (see the shared
  OFFLINE notes), applied with `setdefault` at the CLI's start, so anything the user set wins.
- `without(...)`: imports without the optional extras that cost seconds and that IPL never calls.
  jsonschema (via chromadb and guardrails) builds the `rfc3987_syntax` grammar only to check the
  "iri" string format (~1.6 s on 2 cores), and guardrails imports `nltk` (and with it scipy,
  scikit-learn and pandas, ~2.4 s) for document chunking. Within the block such an import fails, so
  the library takes its own "not installed" path; the package stays importable afterwards for
  anyone who asks for it by name.
- `guardrails_imports()` / `chromadb_imports()`: the two libraries imported that way (chromadb also
  without `overrides`' checks of its classes, `overrides_unchecked()`).
- `collector_paused()` / `settle()`: a cold start without the cyclic garbage collector scanning what
  the imports make.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import sys
from collections.abc import Iterator
from typing import Any

DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # else litellm fetches a price list
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "GUARDRAILS_RUN_SYNC": "true",
}

JSONSCHEMA_EXTRAS = ("rfc3987_syntax",)
"""What jsonschema imports only to check the 'iri' format, which no IPL schema uses."""
GUARDRAILS_EXTRAS = ("nltk", *JSONSCHEMA_EXTRAS)
"""What guardrails imports only for document chunking (nltk) and JSON output schemas."""


def apply() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def without(*names: str) -> Iterator[None]:
    """Within the block, `import name` raises ImportError for each of `names` not yet imported."""
    blocked = [n for n in names if n not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # the documented way to block an import
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


@contextlib.contextmanager
def guardrails_imports() -> Iterator[None]:
    """Import guardrails within the block: offline, without its unused extras, and an nltk imported
    before kept but not let download (guardrails asks it for punkt at import)."""
    for key in ("LITELLM_LOCAL_MODEL_COST_MAP", "GUARDRAILS_RUN_SYNC"):
        os.environ.setdefault(key, DEFAULTS[key])
    nltk: Any = sys.modules.get("nltk")
    download = getattr(nltk, "download", None)
    if nltk is not None:
        nltk.download = lambda *a, **k: False
    try:
        with without(*GUARDRAILS_EXTRAS):
            yield
    finally:
        if nltk is not None:
            nltk.download = download


@contextlib.contextmanager
def chromadb_imports() -> Iterator[None]:
    """Import chromadb within the block: no telemetry, without jsonschema's unused grammar, and its
    methods marked as overrides without being checked (`overrides_unchecked`); the local client's
    API, which chromadb imports on the first `PersistentClient`, is imported here too."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", DEFAULTS["ANONYMIZED_TELEMETRY"])
    with without(*JSONSCHEMA_EXTRAS), overrides_unchecked():
        yield
        importlib.import_module("chromadb.api.rust")


@contextlib.contextmanager
def overrides_unchecked() -> Iterator[None]:
    """Within the block, `overrides.override` (chromadb decorates ~200 methods with it) marks a method
    as it does, without checking it against its base class as the class is made: that check reads
    the bases out of the calling frame's disassembled bytecode and compares signatures, a
    development aid a released chromadb passes, and ~0.14 s of importing it and opening a client on
    2 cores (0.39 against 0.54 s). Methods keep their `__override__` mark (what `EnforceOverrides`
    looks for); they no longer inherit a missing docstring."""
    try:
        import overrides
    except ImportError:  # not installed: nothing imports it
        yield
        return
    module: Any = sys.modules["overrides.overrides"]  # the package's `overrides` attribute is the function
    checked = (overrides.override, overrides.overrides, module.override, module.overrides)

    def override(method: Any = None, **_: Any) -> Any:
        if method is None:  # @override(check_signature=...)
            return override
        method.__override__ = True
        return method

    overrides.override = overrides.overrides = module.override = module.overrides = override
    try:
        yield
    finally:
        overrides.override, overrides.overrides, module.override, module.overrides = checked


def collector_paused() -> None:
    """Pause the cyclic garbage collector until `settle()`: for a process about to import the
    libraries and load the models. The collector runs every 700 new container objects, and the
    imports make millions (pydantic models, typing generics, the libraries' tables) that all live
    until the process ends: scanning them again and again is ~0.3 s of a 2.3 s cold `ipl list` on 2
    cores (`scripts/bench_speed.py`)."""
    gc.disable()


def settle() -> None:
    """After the cold start: collect cycles again, but never scan what it made (frozen: the
    collector skips it for good). Nothing if the collector was not paused."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
