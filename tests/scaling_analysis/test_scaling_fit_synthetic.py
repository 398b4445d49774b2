"""Fits on points drawn from known laws: recovery, interval coverage, held-out checks."""

import numpy as np
import pytest
from scipy.optimize import minimize

from scaling_analysis.fit import (
    FitConfig,
    bootstrap,
    extrapolation_check,
    fit_law,
    huber_objective,
    leave_one_out,
    refit_weighted,
)
from scaling_analysis.laws import CHINCHILLA, ChinchillaLaw, KaplanLaw, chinchilla_theta
from scaling_analysis.points import Points, ScalingDataError

TRUE = ChinchillaLaw(E=1.7, A=400.0, B=1500.0, alpha=0.34, beta=0.30)


def synthetic(seed: int, noise: float = 0.01, law=TRUE) -> Points:
    rng = np.random.default_rng(seed)
    n = np.repeat(np.geomspace(5e7, 3e9, 6), 8)
    d = np.tile(np.geomspace(1e9, 2e11, 8), 6)
    loss = law.loss(n, d) * np.exp(rng.normal(0, noise, n.size))
    return Points(n, d, loss, tuple(f"run-{x:.0e}" for x in n))


def test_huber_gradient_matches_finite_differences():
    p = synthetic(0)
    theta = np.array([6.0, 7.3, 0.5, 0.3, 0.31])
    weights = np.random.default_rng(1).integers(0, 3, len(p)).astype(float)
    for delta in (1e-3, 0.05):
        _, grad = huber_objective(theta, p, CHINCHILLA, delta, weights)
        numeric = np.zeros(5)
        for i in range(5):
            step = np.zeros(5)
            step[i] = 1e-7
            hi, _ = huber_objective(theta + step, p, CHINCHILLA, delta, weights)
            lo, _ = huber_objective(theta - step, p, CHINCHILLA, delta, weights)
            numeric[i] = (hi[0] - lo[0]) / 2e-7
        np.testing.assert_allclose(grad[0], numeric, rtol=1e-5, atol=1e-10)


def test_huber_objective_against_a_plain_formula():
    p = synthetic(0)
    theta = chinchilla_theta(ChinchillaLaw(1.5, 300.0, 1000.0, 0.3, 0.3))
    r = np.log(1.5 + 300.0 / p.n**0.3 + 1000.0 / p.d**0.3) - np.log(p.loss)
    delta = 1e-3
    plain = np.sum(np.where(np.abs(r) <= delta, r**2 / 2, delta * (np.abs(r) - delta / 2)))
    assert huber_objective(theta, p)[0][0] == pytest.approx(plain, rel=1e-12)


def test_noiseless_points_recover_both_forms_exactly():
    law = fit_law(synthetic(0, noise=0.0)).law
    for name, value in TRUE.as_dict().items():
        assert law.as_dict()[name] == pytest.approx(value, rel=1e-3), name
    kaplan = KaplanLaw(N_c=8.8e13, D_c=5.4e13, alpha_n=0.076, alpha_d=0.095)
    points = synthetic(0, noise=0.0, law=kaplan)
    fitted = fit_law(points, FitConfig(form="kaplan")).law
    for name, value in kaplan.as_dict().items():
        assert fitted.as_dict()[name] == pytest.approx(value, rel=1e-2), name


def test_fit_is_a_minimum_scipy_cannot_improve():
    """An independent optimiser (scipy L-BFGS-B with finite differences) started at our optimum
    finds nothing noticeably lower, on full data and on one bootstrap resample."""
    p = synthetic(3)
    fit = fit_law(p)
    counts = np.bincount(np.random.default_rng(0).integers(0, len(p), len(p)), minlength=len(p))
    theta_boot, value_boot = refit_weighted(p, fit, counts[None].astype(float))
    for theta, value, weights in (
        (fit.theta, fit.objective, None),
        (theta_boot[0], value_boot[0], counts),
    ):
        w = None if weights is None else weights.astype(float)

        def f(t, w=w):
            return float(huber_objective(t, p, CHINCHILLA, 1e-3, w)[0][0])

        reference = minimize(f, theta, method="L-BFGS-B", options={"ftol": 1e-14, "gtol": 1e-12})
        assert reference.fun >= value * (1 - 1e-4)


def test_bootstrap_intervals_cover_the_truth_at_about_nominal_rate():
    covered, total = 0, 0
    target = float(TRUE.loss(1e10, 1e12))
    for seed in range(8):
        p = synthetic(seed)
        fit = fit_law(p)
        boot = bootstrap(p, fit, n_resamples=100, seed=seed)
        for name in ("E", "A", "B", "alpha", "beta"):
            lo, hi = boot.interval(name)
            covered += lo <= getattr(TRUE, name) <= hi
            total += 1
        lo, hi = boot.predicted_loss(1e10, 1e12)
        covered += lo <= target <= hi
        total += 1
        assert fit.law.loss(1e10, 1e12) == pytest.approx(target, rel=0.1)  # 3x N, 5x D out
    # 48 intervals at 95%: expect ~45; a percentile bootstrap of 48 points undercovers a bit.
    # At least 36 (75%) is a loose, seed-robust bound; far fewer would mean broken intervals.
    print(f"bootstrap coverage: {covered}/{total}")
    assert covered >= 36, f"{covered}/{total}"
    assert covered <= total


def test_held_out_checks_are_small_on_clean_synthetic_points():
    p = synthetic(1, noise=0.005)
    fit = fit_law(p)
    by_n = leave_one_out(p, fit, by="n")
    assert len(by_n) == 6 and max(by_n.values()) < 0.02
    by_point = leave_one_out(p, fit, by="point")
    assert len(by_point) == len(p)
    ext = extrapolation_check(p, fit)
    assert ext is not None and ext["n_held_out_points"] == 8 and ext["rms_log_error"] < 0.02


def test_too_few_points_is_an_error_naming_the_source():
    p = synthetic(0)
    with pytest.raises(ScalingDataError, match="run-5e.07: 5 points cannot determine 5 free"):
        fit_law(p.subset(np.arange(len(p)) < 5))
    with pytest.raises(ScalingDataError, match="two distinct N"):
        fit_law(p.subset(p.n == p.n[0]))
    with pytest.raises(ScalingDataError, match="form='bogus'"):
        fit_law(p, FitConfig(form="bogus"))
