"""Figures of a fit (matplotlib, Agg): loss vs D per N with the fitted curves, iso-loss contours
with the compute-optimal frontier, isoFLOP parabolas, residuals. Each function writes one figure
in every format of ``formats`` ("png", "svg", ...) and returns the paths written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from scaling_analysis.isoflop import IsoFlopFit  # noqa: E402
from scaling_analysis.laws import ChinchillaLaw, KaplanLaw  # noqa: E402
from scaling_analysis.points import Points  # noqa: E402

Law = ChinchillaLaw | KaplanLaw


def _save(fig, stem: Path, formats: Sequence[str]) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=130)
        paths.append(path)
    plt.close(fig)
    return paths


def _log_axis(axis, low: float, high: float) -> None:
    """Log scale; when the data span less than two decades, ticks at 1, 2, 5 x 10^k labelled
    plainly (3e+04, 2.5) instead of matplotlib's crowded minor labels."""
    if high / low >= 100:
        return
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    axis.set_minor_formatter(NullFormatter())


def _law_text(law: Law) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in law.as_dict().items())


def loss_vs_tokens(
    points: Points, law: Law, stem: Path, formats: Sequence[str] = ("png",), title: str = ""
) -> list[Path]:
    """Validation loss against tokens for each model size, with the fitted L(N, D) curves."""
    fig, ax = plt.subplots(figsize=(6.6, 4.6))
    sizes = np.unique(points.n)
    many = len(sizes) > 12  # e.g. a CSV of final losses: colour by N, curves for a few sizes
    cmap = plt.cm.viridis
    log_n = np.log10(points.n)
    norm = plt.Normalize(log_n.min(), log_n.max() + 1e-9)
    d_grid = np.geomspace(points.d.min() / 1.5, points.d.max() * 1.5, 200)
    curve_sizes = np.geomspace(sizes[0], sizes[-1], 6) if many else sizes
    if many:
        dots = ax.scatter(points.d, points.loss, s=8, c=log_n, cmap=cmap, norm=norm)
        fig.colorbar(dots, ax=ax, label="log10 N")
    for n in curve_sizes:
        color = cmap(0.9 * norm(np.log10(n)))
        if not many:
            sel = points.n == n
            ax.scatter(points.d[sel], points.loss[sel], s=12, color=color, label=f"N={n:.3g}")
        ax.plot(d_grid, law.loss(n, d_grid), color=color, lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    _log_axis(ax.xaxis, d_grid[0], d_grid[-1])
    _log_axis(ax.yaxis, points.loss.min(), points.loss.max())
    ax.set_xlabel("training tokens D")
    ax.set_ylabel("validation loss")
    ax.set_title(title or f"points and fit: {_law_text(law)}", fontsize=8)
    if not many:
        ax.legend(fontsize=7)
    return _save(fig, stem, formats)


def iso_loss_contours(
    points: Points, law: Law, stem: Path, formats: Sequence[str] = ("png",)
) -> list[Path]:
    """Iso-loss contours of the fit in (N, D), the compute-optimal frontier (C = 6ND) and the
    points."""
    fig, ax = plt.subplots(figsize=(6.6, 5.0))
    n_grid = np.geomspace(points.n.min() / 3, points.n.max() * 3, 200)
    d_grid = np.geomspace(points.d.min() / 3, points.d.max() * 3, 200)
    nn, dd = np.meshgrid(n_grid, d_grid)
    surface = law.loss(nn, dd)
    levels = np.unique(np.round(np.geomspace(surface.min(), surface.max(), 14), 3))
    contour = ax.contour(nn, dd, surface, levels=levels, cmap="viridis", linewidths=0.8)
    ax.clabel(contour, fontsize=6, fmt="%.3g")
    c = np.geomspace(6 * n_grid.min() * d_grid.min(), 6 * n_grid.max() * d_grid.max(), 400)
    n_opt, d_opt = law.compute_optimal(c)
    inside = (n_opt >= n_grid[0]) & (n_opt <= n_grid[-1]) & (d_opt >= d_grid[0])
    inside &= d_opt <= d_grid[-1]
    ax.plot(n_opt[inside], d_opt[inside], "r-", lw=2, label="compute-optimal N, D")
    ax.scatter(points.n, points.d, s=6, c="k", label="points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(n_grid[0], n_grid[-1])
    ax.set_ylim(d_grid[0], d_grid[-1])
    ax.set_xlabel("parameters N")
    ax.set_ylabel("tokens D")
    ax.set_title("iso-loss contours of the fitted L(N, D)")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, stem, formats)


def isoflop_parabolas(iso: IsoFlopFit, stem: Path, formats: Sequence[str] = ("png",)) -> list[Path]:
    """Loss against N at each compute budget, the parabola in log N and its minimum."""
    fig, ax = plt.subplots(figsize=(6.6, 4.6))
    colors = plt.cm.plasma(np.linspace(0, 0.85, len(iso.profiles)))
    for profile, color in zip(iso.profiles, colors, strict=True):
        x = np.linspace(np.log(profile.n.min()), np.log(profile.n.max()), 100)
        ax.plot(np.exp(x), np.polyval(profile.parabola, x), color=color, lw=1)
        ax.scatter(profile.n, profile.loss, color=color, s=12, label=f"C={profile.budget:.2g}")
        ax.plot(
            profile.n_opt,
            np.polyval(profile.parabola, np.log(profile.n_opt)),
            marker="v",
            color=color,
            ms=7,
            mec="k",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    every_n = np.concatenate([p.n for p in iso.profiles])
    every_loss = np.concatenate([p.loss for p in iso.profiles])
    _log_axis(ax.xaxis, every_n.min(), every_n.max())
    _log_axis(ax.yaxis, every_loss.min(), every_loss.max())
    ax.set_xlabel("parameters N")
    ax.set_ylabel("loss")
    ax.set_title(
        f"isoFLOP profiles: N_opt ~ C^{iso.exponent_n:.2f}, D_opt ~ C^{iso.exponent_d:.2f}",
        fontsize=9,
    )
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, stem, formats)


def residuals(
    points: Points, law: Law, stem: Path, formats: Sequence[str] = ("png",)
) -> list[Path]:
    """Log residuals of the fit against compute, coloured by model size."""
    fig, ax = plt.subplots(figsize=(6.6, 3.8))
    residual = np.log(law.loss(points.n, points.d)) - np.log(points.loss)
    dots = ax.scatter(6 * points.n * points.d, residual, s=10, c=np.log10(points.n), cmap="viridis")
    fig.colorbar(dots, ax=ax, label="log10 N")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("compute C = 6ND (FLOPs)")
    ax.set_ylabel("log L_fit - log L")
    rms = float(np.sqrt(np.mean(residual**2)))
    ax.set_title(f"residuals of the fit (RMS {rms:.4f})")
    return _save(fig, stem, formats)
