"""Traces of backend calls: record what every backend returned in a run, and serve it back.

`tracing()` wraps the plugin registry (`ipl_graph.plugins.get`): each backend comes back behind a
proxy that appends one call per use to the trace: the node that made it, the plugin kind and name,
the attribute path (`search`, `model.distribution`, `embedder.embed`), a digest of the arguments
and the result, JSON-encoded (pydantic models by their dump, arrays as base64 of their bytes,
streams as the chunks the node read). Attributes that are objects (the searcher's `model`) are
proxied in turn, so nodes that reach into a backend are recorded too; what a backend calls inside
itself is not (it is part of the result).

`replaying(calls)` makes the registry serve those results in order, without building any backend
of a recorded kind: no model loads, no index is read. A call that is not the next one in the trace
(another path, other arguments, another node) fails loudly, so a change to any node's logic shows.
Categorizers and extractors are rules over what the other backends returned: they run for real.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import importlib
import json
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from ipl_graph import plugins

ROOT = Path(__file__).resolve().parents[2]
PURE = frozenset({"categorizer", "extractor"})
"""Kinds that are logic, not models: never recorded, so a replay runs them."""

_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("ipl_trace_inside", default=False)


class ReplayMismatch(AssertionError):
    """The run asked a backend for something the trace does not hold next."""


# --- encoding --------------------------------------------------------------------------------------


def encode(value: Any) -> Any:
    """`value` as JSON data that `decode` turns back into an equal value; TypeError if it cannot."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        data = base64.b64encode(np.ascontiguousarray(value).tobytes()).decode()
        return {"__ndarray__": data, "dtype": value.dtype.str, "shape": list(value.shape)}
    if _is_message(value):
        return {"__message__": f"{type(value).__module__}:{type(value).__qualname__}", "content": value.content}
    if isinstance(value, BaseModel):
        return {"__model__": f"{type(value).__module__}:{type(value).__qualname__}",
                "data": value.model_dump(mode="json")}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: encode(v) for k, v in value.items()}
    raise TypeError(f"cannot encode {type(value).__name__}")


def decode(data: Any) -> Any:
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "__ndarray__" in data:
        raw = base64.b64decode(data["__ndarray__"])
        return np.frombuffer(raw, dtype=np.dtype(data["dtype"])).reshape(data["shape"]).copy()
    if "__message__" in data:
        return _class(data["__message__"])(content=data["content"])
    if "__model__" in data:
        return _class(data["__model__"]).model_validate(data["data"])
    if "__tuple__" in data:
        return tuple(decode(v) for v in data["__tuple__"])
    return {k: decode(v) for k, v in data.items()}


def digest(args: tuple, kwargs: dict[str, Any]) -> str:
    """What the arguments say, to 6 significant digits (numeric code may differ in the last bits
    between machines) and with repository paths relative."""
    text = json.dumps(_canonical([list(args), kwargs]), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(relativise(text).encode()).hexdigest()[:16]


def _canonical(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return f"{float(value):.6g}"
    if isinstance(value, np.ndarray):
        return {"shape": list(value.shape), "values": [_canonical(v) for v in value.ravel().tolist()]}
    if _is_message(value):
        return {"type": type(value).__name__, "content": _canonical(value.content)}
    if isinstance(value, BaseModel):
        return _canonical(value.model_dump(mode="json"))
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | str | np.integer):
        return value if not isinstance(value, np.integer) else int(value)
    return type(value).__name__  # a callable or a handle: what it is, not where it lives


def relativise(text: str) -> str:
    return text.replace(str(ROOT), "<root>")


def absolutise(text: str) -> str:
    return text.replace("<root>", str(ROOT))


def _is_message(value: Any) -> bool:
    from langchain_core.messages import BaseMessage

    return isinstance(value, BaseMessage)


def _class(path: str) -> Any:
    module, _, name = path.partition(":")
    found: Any = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    return found


def _node() -> str | None:
    """The graph node making the call (None outside a graph run, as when a test calls a node)."""
    from langgraph.config import get_config

    try:
        return get_config().get("metadata", {}).get("langgraph_node")
    except RuntimeError:
        return None


# --- recording -------------------------------------------------------------------------------------


class Trace:
    """The calls of one run, in the order the nodes made them."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, call: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls.append(call)
        return call


class Recorded:
    """A backend (or an object reached through one) whose every use goes into the trace."""

    def __init__(self, target: Any, kind: str, name: str, path: str, trace: Trace) -> None:
        object.__setattr__(self, "_target", (target, kind, name, path, trace))

    def __getattr__(self, attr: str) -> Any:
        target, kind, name, path, trace = object.__getattribute__(self, "_target")
        if _inside.get():
            return getattr(target, attr)
        where = f"{path}.{attr}" if path else attr
        call = {"node": _node(), "kind": kind, "name": name, "path": where, "op": "get"}
        try:
            value = getattr(target, attr)
        except AttributeError:
            trace.add(call | {"missing": True})
            raise
        if callable(value) and not isinstance(value, type):
            return RecordedCall(value, call | {"op": "call"}, trace)
        try:
            trace.add(call | {"result": encode(value)})
        except TypeError:
            return Recorded(value, kind, name, where, trace)  # an object: its uses are recorded
        return value


class RecordedCall:
    def __init__(self, fn: Callable[..., Any], call: dict[str, Any], trace: Trace) -> None:
        self.fn, self.call, self.trace = fn, call, trace

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _inside.get():
            return self.fn(*args, **kwargs)
        call = self.trace.add(self.call | {"node": _node(), "args": digest(args, kwargs)})
        token = _inside.set(True)
        try:
            result = self.fn(*args, **kwargs)
        except Exception as exc:
            call["raises"] = [type(exc).__name__, str(exc)]
            raise
        finally:
            _inside.reset(token)
        if isinstance(result, types.GeneratorType):
            call["stream"] = []
            return _recorded_stream(result, call)
        call["result"] = encode(result)
        return result


def _recorded_stream(stream: Iterator[Any], call: dict[str, Any]) -> Iterator[Any]:
    """The stream as the node reads it: only the chunks it asked for are recorded (moderation may
    stop a model early), with `ended` where the backend's stream ended; closing it closes the backend's."""
    try:
        while True:
            token = _inside.set(True)
            try:
                chunk = next(stream)
            except StopIteration:
                call["ended"] = True
                return
            finally:
                _inside.reset(token)
            call["stream"].append(encode(chunk))
            yield chunk
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


@contextlib.contextmanager
def tracing() -> Iterator[Trace]:
    """The registry hands out recorded backends for the block; yields the trace."""
    trace = Trace()
    real = plugins.get

    def get(kind: str, name: str, *args: Any) -> Any:
        if _inside.get():  # a backend building its own parts (the searcher's embedder)
            return real(kind, name, *args)
        token = _inside.set(True)
        try:
            backend = real(kind, name, *args)
        finally:
            _inside.reset(token)
        return backend if kind in PURE else Recorded(backend, kind, name, "", trace)

    plugins.get = get  # type: ignore[assignment]
    try:
        yield trace
    finally:
        plugins.get = real  # type: ignore[assignment]


# --- replaying -------------------------------------------------------------------------------------


class Replay:
    """The recorded calls, served in order."""

    def __init__(self, calls: list[dict[str, Any]], check_node: bool = True) -> None:
        self.calls = calls
        self.next = 0
        self.check_node = check_node
        self.failures: list[str] = []
        """Every mismatch, also those a node caught (generate turns any error into a manual draft)."""
        # attribute paths that lead to other attributes are objects: `model` of `model.distribution`
        parts = [(c["kind"], c["path"].split(".")) for c in calls]
        self.objects = {f"{kind}:{'.'.join(p[:i])}" for kind, p in parts for i in range(1, len(p))}
        self._lock = threading.Lock()

    def take(self, kind: str, name: str, path: str, op: str, args: str | None = None) -> dict[str, Any]:
        asked = {"kind": kind, "name": name, "path": path, "op": op} | ({"args": args} if args else {})
        node = _node()
        with self._lock:
            if self.next >= len(self.calls):
                raise self._failed(f"{node}: {asked} is past the end of the trace ({len(self.calls)} calls)")
            call = self.calls[self.next]
            recorded = {k: call.get(k) for k in asked}
            if recorded != asked or (self.check_node and node != call["node"]):
                raise self._failed(f"call {self.next} of the trace: {node} asked {asked}; "
                                   f"the recording has {call['node']}: {recorded}")
            self.next += 1
            return call

    def _failed(self, message: str) -> ReplayMismatch:
        self.failures.append(message)
        return ReplayMismatch(message)

    @property
    def done(self) -> bool:
        return self.next == len(self.calls)


class Replayed:
    """Stands in for a backend of a recorded run: every use is answered from the trace."""

    def __init__(self, replay: Replay, kind: str, name: str, path: str = "") -> None:
        object.__setattr__(self, "_at", (replay, kind, name, path))

    def __getattr__(self, attr: str) -> Any:
        replay, kind, name, path = object.__getattribute__(self, "_at")
        where = f"{path}.{attr}" if path else attr
        if f"{kind}:{where}" in replay.objects:
            return Replayed(replay, kind, name, where)
        nxt = replay.calls[replay.next] if replay.next < len(replay.calls) else {}
        if nxt.get("op") == "get" and nxt.get("path") == where:
            call = replay.take(kind, name, where, "get")
            if call.get("missing"):
                raise AttributeError(attr)
            return decode(call["result"])
        return Replayed(replay, kind, name, where)  # a method: checked when called

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        replay, kind, name, path = object.__getattribute__(self, "_at")
        call = replay.take(kind, name, path, "call", digest(args, kwargs))
        if "raises" in call:
            exc_type, message = call["raises"]
            raise getattr(__import__("builtins"), exc_type, RuntimeError)(message)
        if "stream" in call:
            return _replayed_stream(replay, call, f"{kind} {name}.{path}")
        return decode(call["result"])


def _replayed_stream(replay: Replay, call: dict[str, Any], what: str) -> Iterator[Any]:
    yield from (decode(c) for c in call["stream"])
    if not call.get("ended"):
        raise replay._failed(f"{what}: the node read past the {len(call['stream'])} chunks it read when recorded")


@contextlib.contextmanager
def replaying(calls: list[dict[str, Any]], check_node: bool = True) -> Iterator[Replay]:
    """The registry serves recorded kinds from `calls` for the block, and refuses to build them."""
    replay = Replay(calls, check_node)
    real_get, real_factories = plugins.get, plugins.factories

    def get(kind: str, name: str, *args: Any) -> Any:
        return real_get(kind, name, *args) if kind in PURE else Replayed(replay, kind, name)

    def factories(kind: str) -> dict[str, Callable[..., Any]]:
        if kind not in PURE:
            raise ReplayMismatch(f"a replay built a {kind} backend")
        return real_factories(kind)

    plugins.get, plugins.factories = get, factories  # type: ignore[assignment]
    try:
        yield replay
    finally:
        plugins.get, plugins.factories = real_get, real_factories  # type: ignore[assignment]


def load_calls(data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Calls as stored (paths under the repository as `<root>`), made absolute again."""
    return json.loads(absolutise(json.dumps(data, ensure_ascii=False)))


def store_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return json.loads(relativise(json.dumps(calls, ensure_ascii=False)))
