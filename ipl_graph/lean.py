"""Imports without the optional extras that cost seconds and that IPL never calls.

Two libraries IPL needs pull in heavy optional packages at import, inside `try: import X except
ImportError`: jsonschema (via chromadb and guardrails) builds the `rfc3987_syntax` grammar, used
only to check the "iri" string format (~1.6 s on 2 cores), and guardrails imports `nltk` (and with
it scipy, scikit-learn and pandas, ~2.4 s) for document chunking. `without` makes such an import
fail for the duration of one import, so the library takes its own "not installed" path; the
package stays importable afterwards for anyone who asks for it by name.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

JSONSCHEMA_EXTRAS = ("rfc3987_syntax",)
"""What jsonschema imports only to check the 'iri' format, which no IPL schema uses."""
GUARDRAILS_EXTRAS = ("nltk", *JSONSCHEMA_EXTRAS)
"""What guardrails imports only for document chunking (nltk) and JSON output schemas."""


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
