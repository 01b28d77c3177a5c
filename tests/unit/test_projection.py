"""The projection's LDA: the generalised eigenvectors of the between- and within-class scatters."""

from __future__ import annotations

import numpy as np
import pytest

from ipl_tools.catalog.projection import fit_lda, project


def two_eigendecompositions(x: np.ndarray, labels: np.ndarray, reg: float = 0.1, max_dim: int = 128) -> np.ndarray:
    """The textbook solution: whiten by the eigendecomposition of the within scatter, then take the
    leading eigenvectors of the whitened between scatter."""
    xc = x.astype(np.float64) - x.mean(0)
    classes, inv = np.unique(labels, return_inverse=True)
    counts = np.bincount(inv).astype(np.float64)
    means = np.zeros((len(classes), x.shape[1]))
    np.add.at(means, inv, xc)
    means /= counts[:, None]
    resid = xc - means[inv]
    within = resid.T @ resid / len(x)
    within += reg * np.trace(within) / x.shape[1] * np.eye(x.shape[1])
    between = (means.T * counts) @ means / len(x)
    w, u = np.linalg.eigh(within)
    whiten = u / np.sqrt(w)
    b, e = np.linalg.eigh(whiten.T @ between @ whiten)
    keep = np.argsort(b)[::-1][: min(len(classes) - 1, max_dim)]
    return whiten @ e[:, keep]


@pytest.mark.parametrize(("n", "dim", "classes"), [(400, 48, 12), (300, 64, 90), (60, 40, 8), (40, 64, 6)])
def test_the_same_directions_as_two_eigendecompositions(n, dim, classes):
    rng = np.random.default_rng(n)
    labels = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim)) * rng.uniform(0.2, 2, dim)
    x = (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32)
    mean, matrix = fit_lda(x, labels)
    reference = two_eigendecompositions(x, labels)
    assert matrix.shape == reference.shape
    signs = np.sign(np.sum(matrix * reference, axis=0))  # a direction's sign is free
    np.testing.assert_allclose(matrix * signs, reference, rtol=1e-3, atol=1e-4)
    sims = project(x, mean, matrix) @ project(x, mean, matrix).T
    ref_sims = project(x, mean, reference.astype(np.float32)) @ project(x, mean, reference.astype(np.float32)).T
    np.testing.assert_allclose(sims, ref_sims, atol=1e-5)
