"""Fit L(N, D) the Chinchilla way (approach 3): Huber loss on log L, L-BFGS from a grid of starts.

Hoffmann et al. 2022 (App. D.2) minimise sum_i Huber_delta(log L_hat(N_i, D_i) - log L_i) with
delta = 1e-3 by L-BFGS from a grid of initialisations and keep the best; Besiroglu et al. 2024
("Chinchilla Scaling: A replication attempt") redo it on the published points, and get
percentile intervals by refitting bootstrap resamples of the points. The same machinery fits the
Kaplan et al. 2020 form (``laws.KAPLAN``).

How it stays fast: every start is one row of one vectorised L-BFGS (``optimize.py``) with the
analytic gradient. The whole grid first takes a few iterations together (screening); the best
starts then run to convergence. Bootstrap resamples and held-out refits are rows of one batched
run too, each warm-started from the full-data optimum and the best other local optima.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scaling_analysis.laws import CHINCHILLA, FORMS, ChinchillaLaw, KaplanLaw, LawForm
from scaling_analysis.optimize import minimize_batched
from scaling_analysis.points import Points, ScalingDataError

HUBER_DELTA = 1e-3  # Hoffmann et al. 2022, App. D.2


@dataclass(frozen=True)
class FitConfig:
    """How a parametric fit searches."""

    form: str = "chinchilla"
    """Parametric form: "chinchilla" (E + A/N^alpha + B/D^beta) or "kaplan" (eq. 1.5)."""
    huber_delta: float = HUBER_DELTA
    """Huber threshold on residuals of log L (Hoffmann et al.: 1e-3)."""
    screen_iter: int = 25
    """L-BFGS iterations every grid start takes before the best are kept."""
    n_refine: int = 64
    """Best screened starts that run to convergence."""
    max_iter: int = 2000
    """L-BFGS iteration cap for a converging start."""
    grid: tuple[tuple[float, ...], ...] | None = None
    """Start values per parameter (the starts are their product); None: the form's default
    (Hoffmann's 4,500 for "chinchilla")."""

    def law_form(self) -> LawForm:
        if self.form not in FORMS:
            raise ScalingDataError(f"form={self.form!r}: expected one of {sorted(FORMS)}")
        form = FORMS[self.form]
        if self.grid is not None:
            form = LawForm(form.name, form.theta_names, form.lower, form.upper, self.grid)
        return form


@dataclass(frozen=True)
class Fit:
    """The best fit found; ``local_optima`` (distinct minima, best first) seed later refits."""

    law: ChinchillaLaw | KaplanLaw
    theta: np.ndarray  # [K] log-space parameters, ``config.law_form().theta_names``
    objective: float  # sum of Huber losses of the log residuals (Hoffmann et al.'s scale)
    n_points: int
    n_starts: int
    local_optima: np.ndarray  # [M, K]
    config: FitConfig = field(default_factory=FitConfig)


def huber_objective(
    theta: np.ndarray,
    points: Points,
    form: LawForm = CHINCHILLA,
    delta: float = HUBER_DELTA,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """sum_i w_i Huber_delta(log L_hat_i - log L_i) and its gradient, for theta [S, K] (or [K]).

    Returns (objective [S], gradient [S, K])."""
    theta = np.atleast_2d(np.asarray(theta, np.float64))
    fun_grad = _objective(points, form, delta, None if weights is None else weights[None])
    value, grad = fun_grad(theta, np.zeros(len(theta), dtype=np.int64))
    return value * delta, grad * delta


def _objective(points: Points, form: LawForm, delta: float, weights: np.ndarray | None):
    """fun_grad for ``minimize_batched``: Huber / delta (so values are O(sum |r|) and the
    tolerances mean the same for any delta); ``weights`` [R, P] per problem row, or [1, P]."""
    log_n, log_d = np.log(points.n)[None], np.log(points.d)[None]
    log_loss = np.log(points.loss)[None]
    per_row = weights is not None and len(weights) > 1

    def fun_grad(theta: np.ndarray, rows: np.ndarray):
        predicted, jac = form.log_loss(theta, log_n, log_d)
        r = predicted - log_loss
        abs_r = np.abs(r)
        value = np.where(abs_r <= delta, 0.5 * r * r / delta, abs_r - 0.5 * delta)
        dr = np.clip(r, -delta, delta) / delta
        if weights is not None:
            w = weights[rows] if per_row else weights
            value, dr = value * w, dr * w
        grad = np.stack([np.sum(dr * j, axis=1) for j in jac], axis=1)
        return value.sum(axis=1), grad

    return fun_grad


def check_enough_points(points: Points, n_free: int, weights: np.ndarray | None = None) -> None:
    """A fit needs more points than free parameters and two distinct N and D."""
    used = points if weights is None else points.subset(weights > 0)
    where = ", ".join(sorted(set(points.group))[:3]) or "no source"
    if len(used) <= n_free:
        raise ScalingDataError(
            f"{where}: {len(used)} points cannot determine {n_free} free parameters; "
            f"give more than {n_free} points"
        )
    if len(np.unique(used.n)) < 2 or len(np.unique(used.d)) < 2:
        raise ScalingDataError(
            f"{where}: the points need at least two distinct N and two distinct D to separate "
            "the parameter and data terms"
        )


def fit_law(points: Points, config: FitConfig | None = None) -> Fit:
    """The best Huber fit of the configured form from its grid of starts."""
    config = config or FitConfig()
    form = config.law_form()
    check_enough_points(points, len(form.theta_names))
    fun_grad = _objective(points, form, config.huber_delta, None)
    lower, upper = np.array(form.lower), np.array(form.upper)
    starts = form.starts()
    screened = minimize_batched(fun_grad, starts, lower, upper, max_iter=config.screen_iter)
    order = np.argsort(screened.value)[: config.n_refine]
    refined = minimize_batched(
        fun_grad, screened.theta[order], lower, upper, max_iter=config.max_iter
    )
    optima = _distinct(refined.theta, refined.value)
    best = optima[0]
    value, _ = fun_grad(best[None], np.zeros(1, dtype=np.int64))
    if not np.isfinite(value[0]):
        raise ScalingDataError(f"{points.group[0]}: no start of the grid gave a finite fit")
    return Fit(
        form.coefficients(best),
        best,
        float(value[0] * config.huber_delta),
        len(points),
        len(starts),
        optima,
        config,
    )


def fit_parametric(points: Points, config: FitConfig | None = None) -> Fit:
    """Chinchilla approach 3 (Hoffmann et al. 2022): ``fit_law`` with the default form."""
    return fit_law(points, config)


def _distinct(theta: np.ndarray, value: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """Rows of ``theta`` sorted by ``value``, dropping near-duplicates of a better row."""
    kept: list[np.ndarray] = []
    for i in np.argsort(value):
        if not np.isfinite(value[i]):
            break
        if all(np.max(np.abs(theta[i] - k)) > tol for k in kept):
            kept.append(theta[i])
    return np.array(kept) if kept else theta[np.argsort(value)[:1]]


def refit_weighted(
    points: Points, fit: Fit, weights: np.ndarray, n_starts: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Refit once per row of ``weights`` [R, P] (bootstrap counts, or 0/1 hold-out masks), each
    from the full-data optimum and the next ``n_starts - 1`` local optima of the grid.

    Returns (theta [R, K], Huber objective [R])."""
    form = fit.config.law_form()
    starts = fit.local_optima[:n_starts]
    k = len(starts)
    rows_weights = np.repeat(weights, k, axis=0)  # row r * k + j: problem r from start j
    fun_grad = _objective(points, form, fit.config.huber_delta, rows_weights)
    result = minimize_batched(
        fun_grad,
        np.tile(starts, (len(weights), 1)),
        np.array(form.lower),
        np.array(form.upper),
        max_iter=fit.config.max_iter,
    )
    values = result.value.reshape(len(weights), k)
    best = np.argmin(values, axis=1)
    theta = result.theta.reshape(len(weights), k, -1)[np.arange(len(weights)), best]
    return theta, values[np.arange(len(weights)), best] * fit.config.huber_delta


@dataclass(frozen=True)
class Bootstrap:
    """Coefficients refitted on resamples of the points (Besiroglu et al. 2024, Sec. 3)."""

    theta: np.ndarray  # [B, K] log-space parameters of each resample's fit
    coefficients: np.ndarray  # [B, C] published parametrisation, columns ``names``
    names: tuple[str, ...]
    form: str

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """Percentile interval of one coefficient."""
        return _percentile_interval(self.coefficients[:, self.names.index(name)], level)

    def predicted_loss(self, n: float, d: float, level: float = 0.95) -> tuple[float, float]:
        """Percentile interval of L(n, d) over the resamples."""
        log_l, _ = FORMS[self.form].log_loss(
            self.theta, np.array([[np.log(n)]]), np.array([[np.log(d)]])
        )
        return _percentile_interval(np.exp(log_l[:, 0]), level)


def _percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap(
    points: Points, fit: Fit, n_resamples: int = 100, seed: int = 0, n_starts: int = 4
) -> Bootstrap:
    """Refit ``n_resamples`` resamples of the points drawn with replacement (as counts, so every
    resample is one row of one batched L-BFGS), warm-started as in ``refit_weighted``."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(points), (n_resamples, len(points)))
    counts = np.zeros((n_resamples, len(points)))
    np.add.at(counts, (np.arange(n_resamples)[:, None], draws), 1.0)
    theta, _ = refit_weighted(points, fit, counts, n_starts)
    form = fit.config.law_form()
    laws = [form.coefficients(t).as_dict() for t in theta]
    names = tuple(laws[0])
    return Bootstrap(theta, np.array([[law[k] for k in names] for law in laws]), names, form.name)


def _log_rms(law, points: Points) -> float:
    residual = np.log(law.loss(points.n, points.d)) - np.log(points.loss)
    return float(np.sqrt(np.mean(residual**2)))


def leave_one_out(points: Points, fit: Fit, by: str = "n") -> dict[str, float]:
    """Refit without each model size (``by="n"``), each run or CSV file (``"group"``) or each
    point (``"point"``), and predict what was left out: RMS error of log L per held-out set.
    Held-out sets whose removal leaves too few points are skipped."""
    if by == "n":
        labels = [f"N={n:.4g}" for n in points.n]
    elif by == "group":
        labels = list(points.group)
    elif by == "point":
        labels = [f"point {i}" for i in range(len(points))]
    else:
        raise ValueError(f"by={by!r}: expected 'n', 'group' or 'point'")
    n_free = len(fit.theta)
    names, masks = [], []
    for label in dict.fromkeys(labels):
        keep = np.array([x != label for x in labels])
        rest = points.subset(keep)
        if len(rest) > n_free and len(np.unique(rest.n)) >= 2 and len(np.unique(rest.d)) >= 2:
            names.append(label)
            masks.append(keep.astype(np.float64))
    if not names:
        return {}
    theta, _ = refit_weighted(points, fit, np.array(masks), n_starts=2)
    form = fit.config.law_form()
    return {
        name: _log_rms(form.coefficients(t), points.subset(mask == 0))
        for name, t, mask in zip(names, theta, masks, strict=True)
    }


def extrapolation_check(points: Points, fit: Fit) -> dict[str, float] | None:
    """Fit on every N but the largest and predict the largest: how well the law extrapolates
    (None when the smaller sizes alone cannot be fitted)."""
    largest = points.n.max()
    keep = points.n < largest
    small = points.subset(keep)
    n_free = len(fit.theta)
    if len(small) <= n_free or len(np.unique(small.n)) < 2 or len(np.unique(small.d)) < 2:
        return None
    theta, _ = refit_weighted(points, fit, keep[None].astype(np.float64), n_starts=4)
    law = fit.config.law_form().coefficients(theta[0])
    big = points.subset(~keep)
    residual = np.log(law.loss(big.n, big.d)) - np.log(big.loss)
    return {
        "held_out_n": float(largest),
        "n_held_out_points": int(len(big)),
        "rms_log_error": float(np.sqrt(np.mean(residual**2))),
        "mean_relative_error": float(np.mean(np.expm1(np.abs(residual)))),
    }
