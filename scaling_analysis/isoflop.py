"""IsoFLOP profiles (Chinchilla approach 2, Hoffmann et al. 2022, Sec. 3.2).

For each compute budget C (C = 6 N D), the losses of models of several sizes trained with that
budget lie on a valley in log N; a parabola through them gives the loss-optimal N_opt(C), and
power laws N_opt ~ C^a, D_opt ~ C^b through the minima give the allocation exponents (Hoffmann
et al. find a = 0.49, b = 0.51 this way).

Runs logged with evaluation points along training give an isoFLOP profile at any budget: each
run's loss is interpolated (linearly in log D, log L) at D = C / (6 N). Points without loss
curves (one point per model, as in a CSV of final losses) are grouped into log-spaced compute
bins instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scaling_analysis.points import Points, ScalingDataError


@dataclass(frozen=True)
class IsoFlopProfile:
    budget: float  # C in FLOPs
    n: np.ndarray  # model sizes on the profile
    loss: np.ndarray  # their loss at this budget
    parabola: np.ndarray  # loss = p[0] x^2 + p[1] x + p[2], x = log N
    n_opt: float  # the parabola's minimum


@dataclass(frozen=True)
class IsoFlopFit:
    profiles: tuple[IsoFlopProfile, ...]
    exponent_n: float  # N_opt ~ C^exponent_n
    exponent_d: float  # D_opt ~ C^exponent_d
    prefactor_n: float  # N_opt = prefactor_n * C^exponent_n

    @property
    def budgets(self) -> np.ndarray:
        return np.array([p.budget for p in self.profiles])

    @property
    def n_opt(self) -> np.ndarray:
        return np.array([p.n_opt for p in self.profiles])

    @property
    def d_opt(self) -> np.ndarray:
        return self.budgets / (6.0 * self.n_opt)


def _curves(points: Points) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """(N, log D sorted, log L) per run (group and N) with at least two points."""
    curves = []
    keys = dict.fromkeys(zip(points.group, points.n, strict=True))
    for group, n in keys:
        sel = (np.array(points.group) == group) & (points.n == n)
        order = np.argsort(points.d[sel])
        log_d, log_l = np.log(points.d[sel][order]), np.log(points.loss[sel][order])
        if len(np.unique(log_d)) >= 2:
            curves.append((float(n), log_d, log_l))
    return curves


def _profiles_from_curves(points: Points, n_budgets: int):
    curves = _curves(points)
    if len({n for n, _, _ in curves}) < 3:
        return []
    c = 6 * points.n * points.d
    budgets = np.geomspace(c.min(), c.max(), n_budgets + 2)[1:-1]
    out = []
    for budget in budgets:
        n_list, loss_list = [], []
        for n, log_d, log_l in curves:
            x = np.log(budget / (6 * n))
            if log_d[0] <= x <= log_d[-1]:
                n_list.append(n)
                loss_list.append(float(np.exp(np.interp(x, log_d, log_l))))
        out.append((float(budget), np.array(n_list), np.array(loss_list)))
    return out


def _profiles_from_bins(points: Points, n_budgets: int):
    log_c = np.log(6 * points.n * points.d)
    edges = np.linspace(log_c.min(), log_c.max() + 1e-9, n_budgets + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (log_c >= lo) & (log_c < hi)
        if sel.any():
            out.append((float(np.exp(log_c[sel].mean())), points.n[sel], points.loss[sel]))
    return out


def isoflop(points: Points, n_budgets: int = 8, method: str = "auto") -> IsoFlopFit:
    """Approach 2: isoFLOP profiles at ``n_budgets`` budgets, a parabola in log N through each,
    and power laws through the minima. ``method``: "curves" (interpolate each run's loss
    curve), "bins" (group points by compute) or "auto" (curves when runs have several points)."""
    if method not in ("auto", "curves", "bins"):
        raise ValueError(f"method={method!r}: expected 'auto', 'curves' or 'bins'")
    raw = _profiles_from_curves(points, n_budgets) if method != "bins" else []
    if method == "bins" or (method == "auto" and not raw):
        raw = _profiles_from_bins(points, n_budgets)
    profiles = []
    for budget, n, loss in raw:
        if len(np.unique(n)) < 3:
            continue
        x = np.log(n)
        parabola = np.polyfit(x, loss, 2)
        if parabola[0] <= 0:
            continue  # no valley: loss still falls (or rises) across all sizes
        x_opt = -parabola[1] / (2 * parabola[0])
        if not x.min() <= x_opt <= x.max():
            continue  # the minimum lies outside the sizes trained: an extrapolation
        profiles.append(IsoFlopProfile(budget, n, loss, parabola, float(np.exp(x_opt))))
    if len(profiles) < 2:
        raise ScalingDataError(
            f"isoFLOP analysis of {len(set(points.group))} run(s)/file(s) found "
            f"{len(profiles)} usable budget(s); it needs two or more, each with 3 or more model "
            "sizes whose losses have a minimum inside the sizes trained"
        )
    log_c = np.log([p.budget for p in profiles])
    log_n = np.log([p.n_opt for p in profiles])
    slope_n, intercept_n = np.polyfit(log_c, log_n, 1)
    slope_d = float(np.polyfit(log_c, log_c - np.log(6.0) - log_n, 1)[0])
    return IsoFlopFit(tuple(profiles), float(slope_n), slope_d, float(np.exp(intercept_n)))
