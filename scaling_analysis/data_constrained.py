"""Data-constrained scaling (Muennighoff et al. 2023, "Scaling Data-Constrained Language Models").

When U_D unique tokens are repeated for D = U_D (1 + R_D) tokens, the repeated tokens are worth
less. Their eq. 5 replaces D and N in the Chinchilla law by effective values

    D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)),      R_D = D / U_D - 1,
    N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)),      R_N = N / U_N - 1,

with U_N = min(N, the compute-optimal N for U_D tokens) and R_D*, R_N* the number of repetitions
after which repeated data (or excess parameters) are worth 1 - 1/e of new ones. As in their
Sec. 5 the base law (E, A, B, alpha, beta) is fitted first (on single-epoch points, or given),
then log R_D* and log R_N* by the same Huber loss on log L (they report R_D* = 15.4,
R_N* = 5.3). Both are fitted here from a grid of starts with the analytic gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scaling_analysis.fit import HUBER_DELTA
from scaling_analysis.laws import ChinchillaLaw
from scaling_analysis.optimize import minimize_batched
from scaling_analysis.points import Points, ScalingDataError


@dataclass(frozen=True)
class DataConstrainedLaw:
    """L(N, D; U_D) = E + A / N'^alpha + B / D'^beta (Muennighoff et al. 2023, eq. 5)."""

    base: ChinchillaLaw
    R_D_star: float
    R_N_star: float

    def effective(self, n, d, unique_tokens) -> tuple[np.ndarray, np.ndarray]:
        """(N', D'): the parameters and tokens worth as much as new ones."""
        n_eff, d_eff, _, _ = _effective(
            self.base, n, d, unique_tokens, self.R_D_star, self.R_N_star
        )
        return n_eff, d_eff

    def loss(self, n, d, unique_tokens) -> np.ndarray:
        n_eff, d_eff = self.effective(n, d, unique_tokens)
        return self.base.loss(n_eff, d_eff)

    def as_dict(self) -> dict[str, float]:
        return {**self.base.as_dict(), "R_D_star": self.R_D_star, "R_N_star": self.R_N_star}


def _effective(base: ChinchillaLaw, n, d, unique_tokens, r_d_star, r_n_star):
    """N', D' and their derivatives with respect to log R_N*, log R_D* (broadcasting)."""
    n, d = np.asarray(n, np.float64), np.asarray(d, np.float64)
    u_d = np.minimum(np.asarray(unique_tokens, np.float64), d)  # fewer tokens: none repeated
    r_d = d / u_d - 1.0
    u_n = np.minimum(base.optimal_n_for_tokens(u_d), n)
    r_n = n / u_n - 1.0
    x_d, x_n = r_d / r_d_star, r_n / r_n_star
    d_eff = u_d + u_d * r_d_star * -np.expm1(-x_d)
    n_eff = u_n + u_n * r_n_star * -np.expm1(-x_n)
    # d/dlog R* of U R* (1 - e^(-R/R*)) = U R* (1 - e^(-x) (1 + x)), x = R / R*
    dd_dlog = u_d * r_d_star * (1.0 - np.exp(-x_d) * (1.0 + x_d))
    dn_dlog = u_n * r_n_star * (1.0 - np.exp(-x_n) * (1.0 + x_n))
    return n_eff, d_eff, dn_dlog, dd_dlog


@dataclass(frozen=True)
class DataConstrainedFit:
    law: DataConstrainedLaw
    objective: float  # sum of Huber losses of the log residuals
    n_points: int
    n_repeated: int  # points with D above their unique tokens


def fit_data_constrained(
    points: Points,
    base: ChinchillaLaw,
    delta: float = HUBER_DELTA,
    log_r_grid: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0),
) -> DataConstrainedFit:
    """Fit R_D* and R_N* with ``base`` fixed (Muennighoff et al. 2023, Sec. 5), by L-BFGS from
    the product grid of ``log_r_grid`` for log R_D* and log R_N*."""
    if points.unique_tokens is None:
        raise ScalingDataError(
            f"{points.group[0] if points.group else 'points'}: a data-constrained fit needs the "
            "unique tokens of every point (run_info.json 'unique_tokens' or a CSV column)"
        )
    repeated = int(np.sum(points.d > points.unique_tokens))
    if repeated < 3:
        raise ScalingDataError(
            f"{points.group[0]}: only {repeated} points repeat data (D > unique tokens); "
            "R_D* and R_N* need at least 3"
        )
    n, d, unique = (x[None] for x in (points.n, points.d, points.unique_tokens))
    log_loss = np.log(points.loss)[None]

    def fun_grad(theta: np.ndarray, rows: np.ndarray):
        r_d_star, r_n_star = np.exp(theta[:, :1]), np.exp(theta[:, 1:])
        n_eff, d_eff, dn_dlog, dd_dlog = _effective(base, n, d, unique, r_d_star, r_n_star)
        term_n, term_d = base.A / n_eff**base.alpha, base.B / d_eff**base.beta
        loss = base.E + term_n + term_d
        r = np.log(loss) - log_loss
        abs_r = np.abs(r)
        value = np.where(abs_r <= delta, 0.5 * r * r / delta, abs_r - 0.5 * delta)
        dr = np.clip(r, -delta, delta) / delta / loss
        grad_d = np.sum(dr * -base.beta * term_d / d_eff * dd_dlog, axis=1)
        grad_n = np.sum(dr * -base.alpha * term_n / n_eff * dn_dlog, axis=1)
        return value.sum(axis=1), np.stack([grad_d, grad_n], axis=1)

    grid = np.array([(a, b) for a in log_r_grid for b in log_r_grid], dtype=np.float64)
    bounds = np.array([-5.0, -5.0]), np.array([12.0, 12.0])
    result = minimize_batched(fun_grad, grid, *bounds, max_iter=1000)
    best = int(np.argmin(result.value))
    r_d_star, r_n_star = (math.exp(v) for v in result.theta[best])
    return DataConstrainedFit(
        DataConstrainedLaw(base, r_d_star, r_n_star),
        float(result.value[best] * delta),
        len(points),
        repeated,
    )
