"""Linear probes: one softmax classifier per catalog label (category, Brand, Colour, ...) on the raw
photo vectors, fitted with the index.

A kNN vote sees ten look-alikes; a probe sees the whole catalog at once and learns which directions
of the embedding carry a label (a logo's stroke, a collar's shape, the colour histogram), which lifts
category and attribute accuracy well beyond the vote on the shared data (see README, Quality). The
index calibrates a probe's probability on held-out catalog photos before it is trusted (`fit.py`).

L-BFGS on a ridge-penalised cross-entropy (`lbfgs.py`, torch's L-BFGS and initialisation in numpy, so
that indexing never imports torch): about 1 s per label on 6,000 photos x 1,776 dimensions on 2 cores.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ipl_tools.catalog.config import LEARN
from ipl_tools.catalog.lbfgs import Objective, init_linear, minimize

SCALE = 10.0
"""Input scale: unit vectors times this, so that the ridge below is a mild one."""
RIDGE = 1e-4
ITERATIONS = 100
MIN_EXAMPLES = 2
"""Photos a value needs in the catalog to be a class."""
PRIOR_SMOOTHING = LEARN.prior_smoothing
"""The category probe's prior correction (`LearnConfig.prior_smoothing`)."""
MAX_CLASSES = 400
MAX_PHOTOS = 20000
"""Photos a probe is fitted on, at most (a random sample beyond that): the fit stays ~linear in labels."""


@dataclass
class Probe:
    classes: list[str]
    weights: np.ndarray
    """(D + 1, C): the last row is the bias."""

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """(N, C) class probabilities of each photo vector."""
        logits = SCALE * vectors @ self.weights[:-1] + self.weights[-1]  # (N, C)
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def distribution(self, vectors: np.ndarray) -> dict[str, float]:
        """{class: probability} for one listing: the mean over its photos."""
        p = self.probabilities(vectors).mean(0)  # (C,)
        return {c: float(v) for c, v in zip(self.classes, p, strict=True)}


def fit_probe(vectors: np.ndarray, values: list[Any], smoothing: float = 0.0) -> Probe | None:
    """A probe for one label from the photos that state it; None with fewer than two classes. With
    `smoothing` m, a class of n photos has its logits raised by log((n + m) / n)."""
    counts = Counter(str(v) for v in values if v not in (None, ""))
    classes = sorted(c for c, n in counts.most_common(MAX_CLASSES) if n >= MIN_EXAMPLES)
    if len(classes) < 2:
        return None
    index = {c: i for i, c in enumerate(classes)}
    rows = [i for i, v in enumerate(values) if v not in (None, "") and str(v) in index]
    if len(rows) > MAX_PHOTOS:
        rows = sorted(np.random.default_rng(0).choice(rows, MAX_PHOTOS, replace=False).tolist())
    x = np.ascontiguousarray(vectors[rows], dtype=np.float32) * SCALE  # (n, D)
    y = np.array([index[str(values[i])] for i in rows])  # (n,)
    weight, bias = init_linear(x.shape[1], len(classes))  # (C, D), (C,): torch's nn.Linear after manual_seed(0)
    fitted = minimize(_objective(x, y, len(classes)), np.concatenate([weight.ravel(), bias]),
                      max_iter=ITERATIONS, history_size=20)
    weight, bias = fitted.x[:weight.size].reshape(weight.shape), fitted.x[weight.size:]
    weights = np.concatenate([weight.T, bias[None, :]])  # (D + 1, C)
    if smoothing:
        n = np.bincount(y, minlength=len(classes))
        weights[-1] += np.log((n + smoothing) / n)  # the prior correction (PRIOR_SMOOTHING)
    return Probe(classes=classes, weights=weights.astype(np.float32))


def _objective(x: np.ndarray, y: np.ndarray, classes: int) -> Objective:
    """The ridge-penalised cross-entropy of a softmax on `x` (n, D) for labels `y` (n,) and its
    gradient, on flat parameters laid out as torch's: weight (C, D) row-major, then bias (C,)."""
    n, d = x.shape
    rows = np.arange(n)

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weight, bias = theta[:classes * d].reshape(classes, d), theta[classes * d:]
        logits = x @ weight.T + bias  # (n, C)
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        total = p.sum(1, keepdims=True)  # (n, 1)
        loss = -(logits[rows, y] - np.log(total[:, 0])).mean() + RIDGE * (weight * weight).sum()
        p /= total * n  # (n, C): d loss / d logits = (softmax - one-hot) / n
        p[rows, y] -= 1 / n
        grad = np.empty_like(theta)
        np.matmul(p.T, x, out=grad[:classes * d].reshape(classes, d))  # (C, D)
        grad[:classes * d] += 2 * RIDGE * theta[:classes * d]
        grad[classes * d:] = p.sum(0)
        return float(loss), grad

    return loss_and_gradient


def fit_probes(vectors: np.ndarray, labels: dict[str, list[Any]]) -> dict[str, Probe]:
    """{label: probe} for every label with two classes or more."""
    probes = {}
    for name, values in labels.items():
        probe = fit_probe(vectors, values, PRIOR_SMOOTHING if name == "category" else 0.0)
        if probe is not None:
            probes[name] = probe
    return probes


CATEGORY_PROBE_WEIGHT = {"spu": 0.0, "category": 0.7}
"""The probe's weight in the category blend, by the catalog's label kind; the kNN vote has the rest.
Where the catalog has spu groups the vote runs over identical-product hits in the space learned to
tell products apart, fused with the packaging's OCR text: the image-only probe on raw vectors only
pulls it towards the categories with the most photos (grocery, vote alone against the blend at 0.5:
0.936 / 0.919, its long-tail catalog 0.726 / 0.690, queries voted as the categorize node votes). Where
it has only categories the vote is over look-alikes and the probe, which has seen the whole catalog,
is the stronger. Chosen on the shared dev queries (probe weight 0.5 / 0.7): fashion 0.898 / 0.900,
clothing 0.892 / 0.897."""


def blend(*distributions: dict[str, float], weights: tuple[float, ...] | None = None) -> tuple[str | None, float]:
    """(winner, its weighted mean probability) over several {value: probability} distributions."""
    weights = weights or (1.0,) * len(distributions)
    total: Counter[str] = Counter()
    for d, w in zip(distributions, weights, strict=True):
        total.update({k: w * v for k, v in d.items()})
    if not total:
        return None, 0.0
    winner, score = total.most_common(1)[0]
    return winner, score / sum(weights)


def category_probe_weight(label_kind: str) -> float:
    """The probe's weight in the category blend of a catalog labelled by `label_kind`."""
    return CATEGORY_PROBE_WEIGHT.get(label_kind, 0.5)


PROBE_SUPPORT = 10.0
"""Where the blend knows the categories' catalog photos, the probe's weight for a category of n photos
is `weight * n / (n + 10)`: a probe has learned little of a category from one or two photos, and
the vote's nearest hits say more of it. Replaying the categorize vote on the shared catalogs' eval
indexes (0.7 for every category / scaled): fashion 0.902 / 0.902, clothing 0.894 / 0.894, fashion
long-tail 0.829 / 0.843."""


def blend_category(votes: dict[str, float], probe: dict[str, float] | None, weight: float,
                   photos: dict[str, int] | None = None) -> tuple[str | None, float]:
    """(category, its share): the blend of the kNN vote's shares and the probe's probabilities
    (`weight` for the probe, scaled down per category by its catalog `photos` where given:
    `PROBE_SUPPORT`), or the vote alone where there is no probe."""
    if not probe or weight <= 0:
        return blend(votes)
    if not photos:
        return blend(votes, probe, weights=(1 - weight, weight))
    blended = {}
    for c in votes.keys() | probe.keys():
        n = photos.get(c, 0)
        w = weight * n / (n + PROBE_SUPPORT)
        blended[c] = (1 - w) * votes.get(c, 0.0) + w * probe.get(c, 0.0)
    winner = max(blended, key=lambda c: blended[c])
    return winner, blended[winner]
