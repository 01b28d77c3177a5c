"""Linear probes: one softmax classifier per catalog label (category, Brand, Colour, ...) on the raw
photo vectors, fitted with the index.

A kNN vote sees ten look-alikes; a probe sees the whole catalog at once and learns which directions
of the embedding carry a label (a logo's stroke, a collar's shape, the colour histogram), which lifts
category and attribute accuracy well beyond the vote on the shared data (see README, Quality). The
index calibrates a probe's probability on held-out catalog photos before it is trusted (`fit.py`).

L-BFGS on a ridge-penalised cross-entropy (torch, CPU): about 1 s per label on 6,000 photos x 1,776
dimensions on 2 cores.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ipl_tools.catalog.config import LEARN

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
    import torch

    index = {c: i for i, c in enumerate(classes)}
    rows = [i for i, v in enumerate(values) if v not in (None, "") and str(v) in index]
    if len(rows) > MAX_PHOTOS:
        rows = sorted(np.random.default_rng(0).choice(rows, MAX_PHOTOS, replace=False).tolist())
    x = torch.from_numpy(np.ascontiguousarray(vectors[rows], dtype=np.float32) * SCALE)  # (n, D)
    y = torch.tensor([index[str(values[i])] for i in rows])  # (n,)
    torch.manual_seed(0)
    init = torch.nn.Linear(x.shape[1], len(classes))  # torch's default initialisation
    weight, bias = init.weight.detach().clone(), init.bias.detach().clone()  # (C, D), (C,)
    opt = torch.optim.LBFGS([weight, bias], lr=1, max_iter=ITERATIONS, history_size=20,
                            line_search_fn="strong_wolfe")
    rows_n = torch.arange(len(y))

    def closure() -> torch.Tensor:
        """The loss, its gradient by hand: the same L-BFGS path without autograd's graph (5-20% faster)."""
        logp = torch.log_softmax(torch.addmm(bias, x, weight.T), 1)  # (n, C)
        loss = -logp[rows_n, y].mean() + RIDGE * (weight**2).sum()
        g = logp.exp_()  # (n, C): d loss / d logits = (softmax - one-hot) / n
        g[rows_n, y] -= 1
        g /= len(y)
        weight.grad = torch.addmm(weight, g.T, x, beta=2 * RIDGE)  # (C, D)
        bias.grad = g.sum(0)
        return loss

    opt.step(closure)
    weights = torch.cat([weight.T, bias[None, :]]).numpy()  # (D + 1, C)
    if smoothing:
        n = np.bincount(y.numpy(), minlength=len(classes))
        weights[-1] += np.log((n + smoothing) / n)  # the prior correction (PRIOR_SMOOTHING)
    return Probe(classes=classes, weights=weights.astype(np.float32))


def fit_probes(vectors: np.ndarray, labels: dict[str, list[Any]]) -> dict[str, Probe]:
    """{label: probe} for every label with two classes or more."""
    probes = {}
    for name, values in labels.items():
        probe = fit_probe(vectors, values, PRIOR_SMOOTHING if name == "category" else 0.0)
        if probe is not None:
            probes[name] = probe
    return probes


CATEGORY_PROBE_WEIGHT = {"spu": 0.5, "category": 0.7}
"""The probe's weight in the category blend, by the catalog's label kind; the kNN vote has the rest.
Where the catalog has spu groups the vote runs over identical-product hits fused with the packaging's
OCR text, which the image-only probe lacks; where it has only categories the vote is over look-alikes
and the probe, which has seen the whole catalog, is the stronger. Chosen on the shared dev queries
(probe weight 0.5 / 0.7): grocery 0.916 / 0.872, fashion 0.898 / 0.900, clothing 0.892 / 0.897."""


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


def blend_category(votes: dict[str, float], probe: dict[str, float] | None, weight: float) -> tuple[str | None, float]:
    """(category, its share): the blend of the kNN vote's shares and the probe's probabilities
    (`weight` for the probe), or the vote alone where there is no probe."""
    return blend(votes, probe, weights=(1 - weight, weight)) if probe else blend(votes)
