"""Parametric forms of L(N, D), written in log space for fitting, with their coefficients.

Every form gives ``log_loss(theta, log_n, log_d)`` -> (log L [S, P], d log L / d theta: K arrays
[S, P]) for a batch of S parameter vectors, so the fit can evaluate thousands of starts as one
array. The coefficient classes hold the fitted law in its published parametrisation and answer
loss and compute-optimal questions.

- Chinchilla (Hoffmann et al. 2022, eq. 2 and App. D.2): L = E + A/N^alpha + B/D^beta, fitted as
  log L = LSE(a - alpha log N, b - beta log D, e) with A = e^a, B = e^b, E = e^e.
- Kaplan et al. 2020 (eq. 1.5): L = ((N_c/N)^(alpha_N/alpha_D) + D_c/D)^alpha_D, fitted as
  log L = alpha_D LSE((alpha_N/alpha_D)(n_c - log N), d_c - log D), N_c = e^n_c, D_c = e^d_c.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _softmax3(u1, u2, u3):
    m = np.maximum(np.maximum(u1, u2), u3)
    w1, w2, w3 = np.exp(u1 - m), np.exp(u2 - m), np.exp(u3 - m)
    total = w1 + w2 + w3
    return m + np.log(total), w1 / total, w2 / total, w3 / total


@dataclass(frozen=True)
class ChinchillaLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al. 2022, eq. 2)."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def loss(self, n, d) -> np.ndarray:
        n, d = np.asarray(n, np.float64), np.asarray(d, np.float64)
        return self.E + self.A / n**self.alpha + self.B / d**self.beta

    def compute_optimal(self, flops) -> tuple[np.ndarray, np.ndarray]:
        """N_opt, D_opt minimising L subject to C = 6 N D (Hoffmann et al. 2022, eq. 4):
        N_opt = G (C/6)^(beta/(alpha+beta)), D_opt = G^-1 (C/6)^(alpha/(alpha+beta)),
        G = (alpha A / (beta B))^(1/(alpha+beta))."""
        c = np.asarray(flops, np.float64) / 6.0
        s = self.alpha + self.beta
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / s)
        return g * c ** (self.beta / s), c ** (self.alpha / s) / g

    def optimal_n_for_tokens(self, d) -> np.ndarray:
        """The N for which D tokens are compute-optimal: at the optimum
        alpha A / N^alpha = beta B / D^beta (the Lagrange condition of eq. 4)."""
        d = np.asarray(d, np.float64)
        return (self.alpha * self.A * d**self.beta / (self.beta * self.B)) ** (1.0 / self.alpha)

    def as_dict(self) -> dict[str, float]:
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta}


@dataclass(frozen=True)
class KaplanLaw:
    """L(N, D) = ((N_c / N)^(alpha_N / alpha_D) + D_c / D)^alpha_D (Kaplan et al. 2020, eq. 1.5:
    alpha_N 0.076, alpha_D 0.103, N_c 6.4e13, D_c 1.8e13 for non-embedding N)."""

    N_c: float
    D_c: float
    alpha_n: float
    alpha_d: float

    def loss(self, n, d) -> np.ndarray:
        n, d = np.asarray(n, np.float64), np.asarray(d, np.float64)
        return ((self.N_c / n) ** (self.alpha_n / self.alpha_d) + self.D_c / d) ** self.alpha_d

    def compute_optimal(self, flops) -> tuple[np.ndarray, np.ndarray]:
        """Minimum of L under C = 6 N D: with p = alpha_N / alpha_D, d/dN of
        (N_c/N)^p + 6 D_c N / C vanishes at N^(p+1) = p N_c^p C / (6 D_c)."""
        c = np.asarray(flops, np.float64)
        p = self.alpha_n / self.alpha_d
        n = (p * self.N_c**p * c / (6.0 * self.D_c)) ** (1.0 / (p + 1.0))
        return n, c / (6.0 * n)

    def as_dict(self) -> dict[str, float]:
        return {"N_c": self.N_c, "D_c": self.D_c, "alpha_n": self.alpha_n, "alpha_d": self.alpha_d}


@dataclass(frozen=True)
class LawForm:
    """How one parametric form is fitted: its log-space parameters, their bounds and the default
    grid of starts."""

    name: str
    theta_names: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    grid: tuple[tuple[float, ...], ...]  # values per parameter; the starts are their product

    def starts(self) -> np.ndarray:
        mesh = np.meshgrid(*[np.asarray(v, np.float64) for v in self.grid], indexing="ij")
        return np.stack([m.reshape(-1) for m in mesh], axis=1)

    def log_loss(self, theta, log_n, log_d):
        return LOG_LOSS[self.name](theta, log_n, log_d)

    def coefficients(self, theta) -> ChinchillaLaw | KaplanLaw:
        return TO_LAW[self.name](np.asarray(theta, np.float64))


def chinchilla_log_loss(theta, log_n, log_d):
    """log L and its gradient for theta [S, 5] = (a, b, e, alpha, beta); log_n, log_d [1, P]."""
    a, b, e, alpha, beta = (theta[:, i : i + 1] for i in range(5))
    u1 = a - alpha * log_n
    u2 = b - beta * log_d
    log_l, s1, s2, s3 = _softmax3(u1, u2, np.broadcast_to(e, u1.shape))
    return log_l, (s1, s2, s3, -s1 * log_n, -s2 * log_d)


def kaplan_log_loss(theta, log_n, log_d):
    """log L and its gradient for theta [S, 4] = (n_c, d_c, alpha_N, alpha_D)."""
    n_c, d_c, alpha_n, alpha_d = (theta[:, i : i + 1] for i in range(4))
    gap_n = n_c - log_n
    u1 = alpha_n / alpha_d * gap_n
    u2 = d_c - log_d
    m = np.maximum(u1, u2)
    w1, w2 = np.exp(u1 - m), np.exp(u2 - m)
    lse = m + np.log(w1 + w2)
    s1, s2 = w1 / (w1 + w2), w2 / (w1 + w2)
    return alpha_d * lse, (alpha_n * s1, alpha_d * s2, s1 * gap_n, lse - s1 * u1)


def _chinchilla_law(theta: np.ndarray) -> ChinchillaLaw:
    a, b, e, alpha, beta = (float(v) for v in theta)
    return ChinchillaLaw(math.exp(e), math.exp(a), math.exp(b), alpha, beta)


def _kaplan_law(theta: np.ndarray) -> KaplanLaw:
    n_c, d_c, alpha_n, alpha_d = (float(v) for v in theta)
    return KaplanLaw(math.exp(n_c), math.exp(d_c), alpha_n, alpha_d)


def chinchilla_theta(law: ChinchillaLaw) -> np.ndarray:
    return np.array([math.log(law.A), math.log(law.B), math.log(law.E), law.alpha, law.beta])


LOG_LOSS = {"chinchilla": chinchilla_log_loss, "kaplan": kaplan_log_loss}
TO_LAW = {"chinchilla": _chinchilla_law, "kaplan": _kaplan_law}

CHINCHILLA = LawForm(
    name="chinchilla",
    theta_names=("a", "b", "e", "alpha", "beta"),
    # exponents stay in [0, 5]: alpha = 0 already merges A into E
    lower=(-np.inf, -np.inf, -np.inf, 0.0, 0.0),
    upper=(np.inf, np.inf, np.inf, 5.0, 5.0),
    # Hoffmann et al. 2022, App. D.2: alpha, beta in {0, 0.5, ..., 2}, e in {-1, -.5, ..., 1},
    # a, b in {0, 5, ..., 25}: 4,500 starts.
    grid=(
        tuple(np.arange(0, 30, 5.0)),
        tuple(np.arange(0, 30, 5.0)),
        tuple(np.arange(-1, 1.5, 0.5)),
        tuple(np.arange(0, 2.5, 0.5)),
        tuple(np.arange(0, 2.5, 0.5)),
    ),
)

KAPLAN = LawForm(
    name="kaplan",
    theta_names=("n_c", "d_c", "alpha_n", "alpha_d"),
    lower=(-np.inf, -np.inf, 1e-3, 1e-3),
    upper=(np.inf, np.inf, 5.0, 5.0),
    # log N_c, log D_c around Kaplan's 6.4e13 and 1.8e13 (e^31, e^30.5) and far below them
    grid=(
        (5.0, 15.0, 25.0, 35.0),
        (5.0, 15.0, 25.0, 35.0),
        (0.05, 0.2, 0.5, 1.0),
        (0.05, 0.2, 0.5, 1.0),
    ),
)

FORMS = {"chinchilla": CHINCHILLA, "kaplan": KAPLAN}
