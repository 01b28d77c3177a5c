"""Image embeddings of a CLIP checkpoint the user has on disk: `--embedder clip:/path/to/checkpoint`.

EfficientNet-Lite0's ImageNet features are what runs anywhere; a marketplace that has a stronger
image model brings it (a CLIP ViT trained on image-text pairs tells products apart that ImageNet
classes lump together, the long tail's weak point). The folder is read with transformers, offline
(`local_files_only`), and nothing is downloaded: a folder without a CLIP vision checkpoint and its
image processor is a one-line error. The vector is the checkpoint's projected image embedding beside
the same colour histogram as EfficientNet's, which the colour namer reads back (`embedding.part`);
torch and transformers load only when this embedder is asked for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ipl_graph.errors import UserError
from ipl_tools.catalog.embedding import WEIGHTS, CachedEmbedder, colour_histogram, crop
from ipl_tools.catalog.projection import l2

PREFIX = "clip:"


class CLIPEmbedder(CachedEmbedder):
    """`embed(photos) -> (N, projection + 192)` float32, L2-normalised; cached per photo hash."""

    def __init__(self, path: str, cache_size: int = 4096) -> None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise UserError(f"{PREFIX}{path}: no such folder; give the folder of a CLIP checkpoint on this machine")
        import torch
        from transformers import AutoImageProcessor, CLIPVisionModelWithProjection
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # no progress bar or backend notice on the seller's terminal
        hf_logging.disable_progress_bar()
        try:
            self._model = CLIPVisionModelWithProjection.from_pretrained(folder, local_files_only=True).eval()
            # the PIL image processor where torchvision is missing (the CPU torch here)
            self._processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise UserError(f"{PREFIX}{path}: not a CLIP checkpoint with its image processor"
                            f" ({str(exc).splitlines()[0][:160]})") from None
        super().__init__(cache_size)
        self._torch = torch
        self.name = f"{PREFIX}{path}"

    def embed_images(self, images: list[Image.Image], batch: int = 32) -> np.ndarray:
        out = []
        for start in range(0, len(images), batch):
            rgb = [img.convert("RGB") for img in images[start : start + batch]]
            pixels = self._processor(images=rgb, return_tensors="pt")["pixel_values"]
            with self._lock, self._torch.inference_mode():
                features = self._model(pixel_values=pixels).image_embeds.numpy()  # (B, projection)
            colour = np.stack([colour_histogram(crop(img)) for img in rgb])  # (B, 192)
            x = np.concatenate([l2(features), WEIGHTS["colour"] * l2(colour)], axis=1)
            out.append(l2(x).astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)
