"""The item's main colour from the photo's own pixels: named by the catalog photos of nearest colour
histogram where the catalog states colours, else by the nearest colour of a fixed palette."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ipl_tools.catalog.config import LEARN
from ipl_tools.catalog.votes import vote

PALETTE: dict[str, tuple[int, int, int]] = {
    "Black": (25, 25, 25), "White": (240, 240, 240), "Grey": (128, 128, 128), "Red": (200, 30, 40),
    "Maroon": (110, 20, 35), "Pink": (235, 140, 170), "Orange": (240, 130, 40), "Yellow": (240, 210, 50),
    "Green": (40, 140, 60), "Olive": (110, 110, 50), "Blue": (40, 90, 200), "Navy Blue": (25, 35, 80),
    "Purple": (110, 50, 140), "Brown": (110, 70, 40), "Beige": (215, 195, 160),
}
_NAMES = list(PALETTE)
_RGB = np.array([PALETTE[n] for n in _NAMES], dtype=np.float32)  # (C, 3)


def dominant_colour(img: Image.Image, background_tolerance: float = 40.0) -> tuple[str | None, float]:
    """(colour name, share of item pixels) of the photo's centre, ignoring border-coloured background."""
    small = np.asarray(img.convert("RGB").resize((64, 64)), dtype=np.float32)  # (64, 64, 3)
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]])  # (256, 3)
    background = np.median(border, axis=0)  # (3,)
    centre = small[10:54, 10:54].reshape(-1, 3)  # (1936, 3)
    item = centre[np.linalg.norm(centre - background, axis=1) > background_tolerance]
    if len(item) < 0.1 * len(centre):
        item = centre  # the item fills the frame, or matches the border: use the centre as it is
    nearest = np.argmin(((item[:, None, :] - _RGB[None]) ** 2).sum(-1), axis=1)  # (P,)
    counts = np.bincount(nearest, minlength=len(_NAMES))
    best = int(counts.argmax())
    return _NAMES[best], float(counts[best] / counts.sum())


def name_colour(histogram: np.ndarray, table: np.ndarray, names: list[str]) -> tuple[str | None, float]:
    """The photo's colour in the catalog's own words: (name, agreement) of the similarity-weighted
    vote of the catalog photos whose colour histograms (`table`, (M, 192)) are nearest to this
    one's (192,): the same vote, over as many photos, that the index calibrated (`fit.py`)."""
    sims = table.astype(np.float32) @ histogram.astype(np.float32)  # (M,)
    near = np.argsort(-sims)[: LEARN.lookalike_k]
    name, agreement, _ = vote([(float(sims[j]), names[j]) for j in near])
    return name, agreement
