"""The projection an index learns: a regularised LDA that pulls together the photos of one product
(the catalog's `spu` groups) or, where the catalog has none, of one category. Identical-product
search and the category vote work in this space."""

from __future__ import annotations

import numpy as np

from ipl_tools.catalog.config import LEARN


def l2(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def fit_lda(x: np.ndarray, labels: np.ndarray, reg: float = LEARN.lda_reg, max_dim: int = LEARN.max_dim) -> tuple:
    """(mean (D,), matrix (D, d)) of a regularised LDA; matrix is None with fewer than two classes.

    With fewer photos than dimensions it is solved in the span of the photos, which gives the same
    directions (the ridge is isotropic, and both scatters live in that span) at a fraction of the cost."""
    mean = x.mean(0)
    classes, inv = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        return mean.astype(np.float32), None
    xc = (x - mean).astype(np.float64)  # (N, D)
    dim = x.shape[1]
    basis = None
    if len(x) < dim:
        _, sv, vt = np.linalg.svd(xc, full_matrices=False)
        basis = vt[sv > 1e-6 * sv[0]].T  # (D, r)
        xc = xc @ basis  # (N, r)
    counts = np.bincount(inv).astype(np.float64)  # (C,)
    means = np.zeros((len(classes), xc.shape[1]))
    np.add.at(means, inv, xc)
    means /= counts[:, None]  # (C, r)
    resid = xc - means[inv]
    within = resid.T @ resid / len(x)  # (r, r)
    within += reg * np.trace(within) / dim * np.eye(len(within))
    # The generalised eigenproblem between v = l within v, with v' within v = 1: whitened by the
    # Cholesky factor (within = L L', whiten = inv(L)'), then solved as the SVD of the whitened, count-weighted class
    # means (their Gram matrix is the whitened between scatter). The same directions, up to sign, as
    # two full eigendecompositions, at a fraction of their time (a third of a catalog's fit before).
    # whiten = inv(L)' is never formed: both products with it are triangular solves, O(r^2 C) against
    # the inverse's O(r^3) (the LDAs of a fit's folds spent most of their time inverting).
    from scipy.linalg import solve_triangular  # here, not at import: listings never fit

    low = np.linalg.cholesky(within)  # (r, r), within = low low'
    whitened = solve_triangular(low, means.T, lower=True, check_finite=False).T  # (C, r): means @ whiten
    weighted = np.sqrt(counts / len(x))[:, None] * whitened  # (C, r)
    _, _, vt = np.linalg.svd(weighted, full_matrices=False)  # by singular value, largest first
    top = vt[: min(len(classes) - 1, max_dim)].T  # (r, d)
    matrix = solve_triangular(low.T, top, lower=False, check_finite=False)  # (r, d): whiten @ top
    if basis is not None:
        matrix = basis @ matrix  # (D, d)
    return mean.astype(np.float32), matrix.astype(np.float32)


def project(x: np.ndarray, mean: np.ndarray, matrix: np.ndarray | None) -> np.ndarray:
    return l2(x if matrix is None else (x - mean) @ matrix).astype(np.float32)
