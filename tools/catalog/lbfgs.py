"""L-BFGS with the strong-Wolfe line search: a numpy port of torch.optim.LBFGS, step for step.

The probes are fitted with it (`probe.py`) so that `ipl index` never imports torch (~2.6 s of import
and optimizer set-up). The probes are not converged at their iteration budget, so the optimizer's
exact path decides what they learn: this follows torch's lbfgs.py (torch 2.x) line by line, down to
which scalars are float32 (torch's 0-dim tensors, here np.float32; NumPy 2 keeps a Python float
weak the way torch does) and which are Python floats (losses, first step sizes), and torch's
`number / tensor`, which is a reciprocal times the number. What is left differs from torch only in
float32 rounding in the three vector primitives below (`_dot`, `_abs_sum`, `_axpy`: BLAS's order of
summation, torch's fused multiply-add); with torch's own in their place it retraces torch bit for bit
(tests/unit/test_lbfgs.py).

`init_linear` draws torch.nn.Linear's default initialisation after torch.manual_seed(seed) from
the same Mersenne twister, bit for bit, without torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]
"""x (float32, flat) -> (loss, its gradient as a new float32 array of x's shape)."""
Scalar = Any
"""A Python float where torch has one, an np.float32 where torch has a 0-dim tensor."""


@dataclass
class Result:
    x: np.ndarray
    loss: float
    """The loss at x."""
    iterations: int
    evaluations: int


def minimize(fun: Objective, x0: np.ndarray, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
             tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9, history_size: int = 100) -> Result:
    """torch.optim.LBFGS(..., line_search_fn="strong_wolfe").step(closure) from x0, with torch's
    arguments and defaults; x0 is not changed."""
    max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
    x = np.array(x0, dtype=np.float32)
    loss, flat_grad = fun(x)
    evals = 1
    if np.abs(flat_grad).max() <= tolerance_grad:
        return Result(x, loss, 0, evals)
    old_dirs: list[np.ndarray] = []
    old_stps: list[np.ndarray] = []
    ro: list[Scalar] = []
    h_diag: Scalar = 1
    d, prev_flat_grad = -flat_grad, flat_grad  # the first direction: steepest descent
    t: Scalar = lr
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        if n_iter > 1:  # the two-loop recursion over the last `history_size` steps
            y = flat_grad - prev_flat_grad
            s = d * t
            ys = _dot(y, s)
            if ys > 1e-10:
                if len(old_dirs) == history_size:
                    del old_dirs[0], old_stps[0], ro[0]
                old_dirs.append(y)
                old_stps.append(s)
                ro.append(1.0 / ys)
                h_diag = ys / _dot(y, y)
            al: list[Scalar] = [None] * len(old_dirs)
            q = -flat_grad
            for i in range(len(old_dirs) - 1, -1, -1):
                al[i] = _dot(old_stps[i], q) * ro[i]
                q = _axpy(q, -al[i], old_dirs[i])
            d = q * h_diag
            for i in range(len(old_dirs)):
                be_i = _dot(old_dirs[i], d) * ro[i]
                d = _axpy(d, al[i] - be_i, old_stps[i])
        prev_flat_grad, prev_loss = flat_grad, loss
        t = min(1.0, 1.0 / _abs_sum(flat_grad)) * lr if n_iter == 1 else lr
        gtd = _dot(flat_grad, d)
        if gtd > -tolerance_change:
            break
        loss, flat_grad, t, ls_evals = _strong_wolfe(fun, x, t, d, loss, flat_grad, gtd, max_ls=max_eval - evals)
        x = _axpy(x, t, d)
        evals += ls_evals
        if (n_iter == max_iter or evals >= max_eval or np.abs(flat_grad).max() <= tolerance_grad
                or np.abs(d * t).max() <= tolerance_change or abs(loss - prev_loss) < tolerance_change):
            break
    return Result(x, loss, n_iter, evals)


def _dot(a: np.ndarray, b: np.ndarray) -> Scalar:
    return a.dot(b)


def _abs_sum(a: np.ndarray) -> Scalar:
    return np.abs(a).sum()


def _axpy(x: np.ndarray, alpha: Scalar, y: np.ndarray) -> np.ndarray:
    """x + alpha * y, a new array: torch's x.add(y, alpha=alpha), but for its fused multiply-add."""
    return x + y * alpha


def _rdiv(number: Scalar, value: Scalar) -> Scalar:
    """number / value the way torch computes it: for a tensor value, value.reciprocal() * number."""
    return (1 / value) * number if isinstance(value, np.float32) else number / value


def _cubic_interpolate(x1: Scalar, f1: float, g1: Scalar, x2: Scalar, f2: float, g2: Scalar,
                       bounds: tuple[Scalar, Scalar] | None = None) -> Scalar:
    """The minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to `bounds`."""
    xmin_bound, xmax_bound = bounds if bounds is not None else (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - _rdiv(3 * (f1 - f2), x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square < 0:
        return (xmin_bound + xmax_bound) / 2.0
    d2 = np.sqrt(d2_square)
    if x1 <= x2:
        min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(min_pos, xmin_bound), xmax_bound)


def _strong_wolfe(fun: Objective, x: np.ndarray, t: Scalar, d: np.ndarray, f: float, g: np.ndarray, gtd: Scalar,
                  c1: float = 1e-4, c2: float = 0.9, tolerance_change: float = 1e-9,
                  max_ls: int = 25) -> tuple[float, np.ndarray, Scalar, int]:
    """(loss, gradient, step, evaluations): a step along d from x meeting the strong Wolfe conditions."""
    d_norm = np.abs(d).max()
    f_new, g_new = fun(_axpy(x, t, d))
    ls_func_evals = 1
    gtd_new = _dot(g_new, d)
    # bracket an interval containing a point satisfying the Wolfe criteria
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f, bracket_g = [t_prev, t], [f_prev, f_new], [g_prev, g_new]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f, bracket_g = [t_prev, t], [f_prev, f_new], [g_prev, g_new]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new, gtd_new
        f_new, g_new = fun(_axpy(x, t, d))
        ls_func_evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # zoom: refine the bracket until a point in it satisfies the criteria
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        # t too close to an end of the bracket, twice or beyond it: 0.1 of the bracket away from that end
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = fun(_axpy(x, t, d))
        ls_func_evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            # Armijo condition not met, or not below the lowest point: the new high
            bracket[high_pos], bracket_f[high_pos], bracket_g[high_pos] = t, f_new, g_new
            bracket_gtd[high_pos] = gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:  # the old low becomes the high
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos], bracket_g[low_pos] = t, f_new, g_new
            bracket_gtd[low_pos] = gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


def init_linear(d_in: int, d_out: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(weight (d_out, d_in), bias (d_out,)): torch.manual_seed(seed); torch.nn.Linear(d_in, d_out),
    bit for bit. torch's CPU generator is the 32-bit Mersenne twister seeded as numpy's legacy
    RandomState; uniform_(lo, hi) on float32 takes 24 bits of one draw u and returns the fused
    u * (hi - lo) + lo (exact in float64 before the float32 rounding)."""
    raw = np.random.RandomState(seed).randint(0, 2**32, size=d_out * d_in + d_out, dtype=np.uint64)
    u = (raw & 0xFFFFFF).astype(np.float64) * 2.0**-24

    def uniform(u: np.ndarray, bound: float) -> np.ndarray:
        lo, hi = np.float32(-bound), np.float32(bound)
        return (u * np.float64(hi - lo) + np.float64(lo)).astype(np.float32)

    # kaiming_uniform_(a=sqrt(5)): gain sqrt(2 / (1 + 5)), bound sqrt(3) * gain / sqrt(fan_in)
    weight = uniform(u[:d_out * d_in], math.sqrt(3.0) * (math.sqrt(2.0 / (1 + 5)) / math.sqrt(d_in)))
    return weight.reshape(d_out, d_in), uniform(u[d_out * d_in:], 1 / math.sqrt(d_in))
