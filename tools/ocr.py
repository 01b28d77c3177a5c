"""OCR of packaging and labels with RapidOCR (PP-OCRv4, Chinese + English, weights in the package)."""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np
from PIL import Image

from ipl_graph.schemas import Photo
from ipl_tools.photos import load_rgb

OCR_SIDE = 640
"""Small photos are enlarged to this many pixels a side before OCR: packaging text in a 256 px shop
photo is only read once enlarged (~3x more lines). 640 px reads as many lines as 768 px did (104
against 105 on 60 grocery shop photos) at ~60% of the detector's time (p50 94 against 166 ms)."""


class RapidOCREngine:
    """`read(photo, min_score) -> list[str]`: the text lines of a photo read with that confidence or
    more (the policy's `ocr_min_score`); what the engine read is cached per photo hash."""

    name = "rapidocr"

    def __init__(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        # "max" with 960 px: ~0.3 s a photo on one core and lines kept whole (defaults take ~2 s).
        self._engine = RapidOCR(det_limit_type="max", det_limit_side_len=960)
        self._lock = threading.Lock()
        self._cached = lru_cache(maxsize=1024)(self._read)

    def read(self, photo: Photo, min_score: float) -> list[str]:
        return [text for text, score in self._cached(photo.path, photo.sha256) if score >= min_score]

    def _read(self, path: str, sha256: str) -> tuple[tuple[str, float], ...]:
        img = load_rgb(path, sha256)
        scale = OCR_SIDE / max(img.size)
        if scale > 1:  # packaging text in small photos is only read once enlarged (~3x more lines)
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
        rgb = np.ascontiguousarray(np.asarray(img)[:, :, ::-1])  # (H, W, 3) BGR for OpenCV
        with self._lock:
            result, _ = self._engine(rgb)
        return tuple((text, float(score)) for _, text, score in (result or []))


class NoOCR:
    name = "none"

    def read(self, photo: Photo, min_score: float = 0.0) -> list[str]:
        return []
