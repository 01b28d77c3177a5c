"""Calibrations: logistic maps from a score (share of a vote, similarity, margin) to P(right), fitted
on held-out catalog photos, and the case weights that balance them over classes and mix in photos of
classes the catalog lacks."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ipl_tools.catalog.config import LEARN


def fit_logistic(features: np.ndarray, y: np.ndarray, ridge: float = LEARN.logistic_ridge,
                 steps: int = LEARN.logistic_steps, weights: np.ndarray | None = None) -> list[float]:
    """Logistic regression by Newton steps: coefficients for [1, *features]; `weights` per case
    (default 1 each)."""
    x = np.hstack([np.ones((len(features), 1)), features])
    sw = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=float)
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (sw * (p - y)) + ridge * w
        hess = (x.T * (sw * p * (1 - p))) @ x + ridge * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return [float(v) for v in w]


def fit_rate(features: np.ndarray, right: np.ndarray, weights: np.ndarray | None = None) -> list[float]:
    """A calibration that holds up when every held-out case was right (or wrong): one pseudo-case of
    each outcome at the mean features keeps the fit finite and the rate below 1. `weights` per case
    (their mean is taken as 1)."""
    features = np.asarray(features, dtype=float).reshape(len(right), -1)
    pseudo = np.repeat(features.mean(0, keepdims=True), 2, axis=0)
    sw = np.ones(len(right)) if weights is None else np.asarray(weights, dtype=float) / np.mean(weights)
    return fit_logistic(np.vstack([features, pseudo]), np.concatenate([np.asarray(right, float), [1.0, 0.0]]),
                        weights=np.concatenate([sw, [1.0, 1.0]]))


def logistic(coef: list[float], *features: float) -> float:
    z = coef[0] + sum(c * f for c, f in zip(coef[1:], features, strict=True))
    return float(1 / (1 + np.exp(-np.clip(z, -30, 30))))


def balance_weights(classes: list[Any], power: float = LEARN.class_balance) -> np.ndarray:
    """Per case, 1 / (cases of its class)**power, mean 1: each class weighs alike at power 1."""
    counts = Counter(classes)
    w = np.array([counts[c] ** -power for c in classes], dtype=float)
    return w / w.mean() if len(w) else w


def with_open(closed: np.ndarray, right: np.ndarray, classes: list[Any], open_: list[list[float]],
              open_classes: list[Any], share: float = LEARN.open_share) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-set cases plus open-set ones (always wrong) weighted to `share` of the whole, each set
    balanced over its classes (`balance_weights`)."""
    weights = balance_weights(classes)
    if not share or not open_:
        return closed, right, weights
    o = np.asarray(open_, dtype=float)
    wc = weights / weights.sum() * (1 - share) * len(closed)
    wo = balance_weights(open_classes)
    wo = wo / wo.sum() * share * len(closed)
    return np.vstack([closed, o]), np.concatenate([right, np.zeros(len(o))]), np.concatenate([wc, wo])


def gate_features(score: float, runner_up: float, photos: float) -> list[float]:
    """What the identity gate judges a top hit by: its score, its lead over the next product, and
    log(1 + the catalog photos of its product). Wrongly trusted top hits are mostly products of two or
    three photos (a sibling of the seller's product: one photo of it may happen to match well). Held
    out, a product's photo leaves one fewer of it to be found, and a product of one photo is never
    found: the gate learns to trust the products the catalog knows by one photo least, as it cannot
    vouch for them. (Counting the photos the held-out photo's search saw instead trusted 5% more
    right top hits on the grocery long-tail catalogs, and one of 19 missing products on seed 0.)"""
    return [score, score - runner_up, float(np.log1p(photos))]
