"""L-BFGS run on many starting points at once, vectorised over the starts (numpy only).

A scaling-law fit is a small problem (5 parameters, a few hundred points) solved from thousands
of starts (Hoffmann et al. 2022, App. D.2) and again for every bootstrap resample. One scipy
call per start spends its time in Python overhead; here every start takes its L-BFGS step
together, so one objective call evaluates all of them as one [starts, points] array.

Each row is an independent problem (its own data weights, history and step length): L-BFGS
two-loop recursion (Nocedal & Wright 2006, Alg. 7.4) with box bounds by projection and an
Armijo backtracking line search. Rows stop when their projected gradient or relative decrease
is below tolerance, or when the line search cannot decrease them any more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# fun_grad(theta [R, K], rows [R]) -> (objective [R], gradient [R, K]); ``rows`` are the indices
# of the problems being evaluated, so that per-problem data (bootstrap weights) can be selected.
FunGrad = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class BatchedResult:
    theta: np.ndarray  # [S, K] the minimiser found from each start
    value: np.ndarray  # [S] objective there (inf where the start was not finite)
    n_iter: np.ndarray  # [S] L-BFGS iterations taken


def minimize_batched(
    fun_grad: FunGrad,
    theta0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    max_iter: int = 500,
    memory: int = 10,
    ftol: float = 1e-12,
    gtol: float = 1e-9,
    first_step: float = 0.1,
) -> BatchedResult:
    """Minimise S independent problems from ``theta0`` [S, K] within [lower, upper] [K].

    ``first_step`` is the largest parameter change of the first (gradient) step of a row."""
    with np.errstate(all="ignore"):  # far-off starts overflow; they become inf and stop
        return _minimize(fun_grad, theta0, lower, upper, max_iter, memory, ftol, gtol, first_step)


def _minimize(fun_grad, theta0, lower, upper, max_iter, memory, ftol, gtol, first_step):
    theta = np.clip(np.array(theta0, dtype=np.float64), lower, upper)
    n_rows, n_dim = theta.shape
    value, grad = fun_grad(theta, np.arange(n_rows))
    active = np.isfinite(value) & np.all(np.isfinite(grad), axis=1)
    value = np.where(active, value, np.inf)
    s_hist = np.zeros((memory, n_rows, n_dim))
    y_hist = np.zeros((memory, n_rows, n_dim))
    rho = np.zeros((memory, n_rows))
    gamma = np.zeros(n_rows)  # 0: no curvature pair yet, take a scaled gradient step
    n_iter = np.zeros(n_rows, dtype=np.int64)
    for it in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        g = grad[idx]
        direction = -_two_loop(g, s_hist[:, idx], y_hist[:, idx], rho[:, idx], gamma[idx], it)
        fresh = gamma[idx] == 0
        slope = np.sum(g * direction, axis=1)
        restart = fresh | ~(slope < 0)  # no history, or not a descent direction: steepest descent
        if restart.any():
            g_r = g[restart]
            scale = first_step / np.maximum(np.abs(g_r).max(axis=1, keepdims=True), 1e-300)
            direction[restart] = -g_r * scale
            rho[:, idx[restart & ~fresh]] = 0.0
        new_theta, new_value, new_grad, moved = _line_search(
            fun_grad, idx, theta[idx], value[idx], g, direction, lower, upper
        )
        n_iter[idx] += 1
        step = new_theta - theta[idx]
        change = new_grad - g
        sy = np.sum(step * change, axis=1)
        yy = np.sum(change * change, axis=1)
        curved = moved & (sy > 1e-12 * np.sqrt(np.sum(step * step, axis=1) * yy)) & (yy > 0)
        slot = it % memory
        s_hist[slot, idx] = np.where(curved[:, None], step, 0.0)
        y_hist[slot, idx] = np.where(curved[:, None], change, 0.0)
        rho[slot, idx] = np.where(curved, 1.0 / np.where(curved, sy, 1.0), 0.0)
        gamma[idx] = np.where(curved, sy / np.where(curved, yy, 1.0), gamma[idx])
        decrease = value[idx] - new_value
        theta[idx], value[idx], grad[idx] = new_theta, new_value, new_grad
        projected = _projected_gradient(new_theta, new_grad, lower, upper)
        done = (
            ~moved
            | (np.abs(projected).max(axis=1) <= gtol)
            | (decrease <= ftol * np.maximum(np.abs(new_value), 1e-300))
        )
        active[idx[done]] = False
    return BatchedResult(theta, value, n_iter)


def _two_loop(g, s_hist, y_hist, rho, gamma, it):
    """H g for each row, H the L-BFGS inverse-Hessian estimate (zero pairs are no-ops)."""
    memory = s_hist.shape[0]
    slots = [(it - 1 - j) % memory for j in range(min(it, memory))]  # newest first
    q = g.copy()
    alphas = []
    for k in slots:
        a_k = rho[k] * np.sum(s_hist[k] * q, axis=1)
        q -= a_k[:, None] * y_hist[k]
        alphas.append(a_k)
    r = q * gamma[:, None]
    for k, a_k in zip(reversed(slots), reversed(alphas), strict=True):
        b_k = rho[k] * np.sum(y_hist[k] * r, axis=1)
        r += s_hist[k] * (a_k - b_k)[:, None]
    return r


def _line_search(fun_grad, idx, theta, value, grad, direction, lower, upper, max_halvings=40):
    """Projected Armijo backtracking from t = 1, all rows together; ``moved`` marks the rows
    that found a decrease."""
    new_theta, new_value, new_grad = theta.copy(), value.copy(), grad.copy()
    moved = np.zeros(len(idx), dtype=bool)
    pending = np.arange(len(idx))
    t = 1.0
    for _ in range(max_halvings):
        trial = np.clip(theta[pending] + t * direction[pending], lower, upper)
        f_trial, g_trial = fun_grad(trial, idx[pending])
        predicted = np.sum(grad[pending] * (trial - theta[pending]), axis=1)
        finite = np.isfinite(f_trial) & np.all(np.isfinite(g_trial), axis=1)
        ok = finite & (f_trial <= value[pending] + 1e-4 * predicted)
        ok &= f_trial < value[pending]
        hit = pending[ok]
        new_theta[hit], new_value[hit], new_grad[hit] = trial[ok], f_trial[ok], g_trial[ok]
        moved[hit] = True
        pending = pending[~ok]
        if pending.size == 0:
            break
        t *= 0.5
    return new_theta, new_value, new_grad, moved


def _projected_gradient(theta, grad, lower, upper):
    at_lower = (theta <= lower) & (grad > 0)
    at_upper = (theta >= upper) & (grad < 0)
    return np.where(at_lower | at_upper, 0.0, grad)
