"""The trace machinery on a small backend: what is recorded is served back equal, in order, and any
other call fails."""

from __future__ import annotations

import numpy as np
import pytest

from fakes import FakeChatModel, generator_plugin
from ipl_graph import plugins
from ipl_graph.hookspecs import hookimpl
from ipl_graph.schemas import Photo
from traces import Replayed, ReplayMismatch, replaying, tracing


class Model:
    threshold = 0.5

    def score(self, vectors: np.ndarray) -> float:
        return float(vectors.sum())


class Reader:
    """A backend with a part of its own (`model`), as the searcher has."""

    name = "reader"

    def __init__(self) -> None:
        self.model = Model()

    def read(self, photo: Photo) -> list[str]:
        return [photo.path.upper()]

    def vectors(self, n: int) -> np.ndarray:
        return np.arange(n * 3, dtype=np.float32).reshape(n, 3)


class ReaderPlugin:
    @hookimpl
    def register_ocr_engines(self, register):
        register("reader", Reader)


@pytest.fixture
def backends():
    names = [plugins.register(ReaderPlugin(), name="test-reader"),
             plugins.register(generator_plugin(fake=lambda: FakeChatModel.saying("one two three")), name="test-fake")]
    yield
    for name in names:
        plugins.unregister(name)


def use(photo: Photo) -> tuple:
    ocr = plugins.get("ocr", "reader")
    vectors = ocr.vectors(2)
    stream = plugins.get("generator", "fake").stream("write")
    first = next(stream).content
    stream.close()  # read one chunk, as moderation might
    return ocr.name, ocr.read(photo), vectors, ocr.model.score(vectors), ocr.model.threshold, first


def test_a_replay_serves_what_was_recorded_without_building_a_backend(backends):
    photo = Photo(path="/a.jpg", sha256="0" * 64, width=1, height=1)
    with tracing() as trace:
        recorded = use(photo)
    assert [c["path"] for c in trace.calls] == ["vectors", "stream", "name", "read", "model.score", "model.threshold"]
    with replaying(trace.calls) as replay:
        assert isinstance(plugins.get("ocr", "reader"), Replayed)
        replayed = use(photo)
    assert replay.done and not replay.failures
    assert replayed[:2] == recorded[:2] and replayed[3:] == recorded[3:]
    assert replayed[2].dtype == np.float32 and np.array_equal(replayed[2], recorded[2])


def test_other_arguments_or_reading_past_the_recorded_chunks_fail(backends):
    photo = Photo(path="/a.jpg", sha256="0" * 64, width=1, height=1)
    with tracing() as trace:
        use(photo)
    with replaying(trace.calls), pytest.raises(ReplayMismatch, match="vectors"):
        plugins.get("ocr", "reader").vectors(3)
    with replaying(trace.calls[1:]) as replay:
        stream = plugins.get("generator", "fake").stream("write")
        next(stream)
        with pytest.raises(ReplayMismatch, match="read past"):
            next(stream)
    assert replay.failures
