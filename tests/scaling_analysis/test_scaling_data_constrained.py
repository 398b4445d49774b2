"""Muennighoff et al. 2023's data-constrained law: identities and recovery of R_D*, R_N*."""

import numpy as np
import pytest

from scaling_analysis.data_constrained import DataConstrainedLaw, fit_data_constrained
from scaling_analysis.laws import ChinchillaLaw
from scaling_analysis.points import Points, ScalingDataError

BASE = ChinchillaLaw(E=1.87, A=521.0, B=1488.0, alpha=0.35, beta=0.353)  # their eq. 5 fit
TRUE = DataConstrainedLaw(BASE, R_D_star=15.4, R_N_star=5.3)  # their reported values


def test_no_repetition_is_the_chinchilla_law():
    n, d = np.array([1e8, 1e9]), np.array([1e10, 3e10])
    np.testing.assert_allclose(TRUE.loss(n, d, unique_tokens=d * 2), BASE.loss(n, d))


def test_effective_tokens_match_the_formula_and_saturate():
    u, epochs = 1e9, np.array([1.0, 2.0, 5.0, 1e4])
    n = BASE.optimal_n_for_tokens(u) / 2  # below U_N: no excess parameters
    _, d_eff = TRUE.effective(n, u * epochs, u)
    expected = u + u * 15.4 * (1 - np.exp(-(epochs - 1) / 15.4))
    np.testing.assert_allclose(d_eff, expected)
    assert d_eff[-1] == pytest.approx(u * (1 + 15.4), rel=1e-6)  # repeated data runs out


def test_recovers_r_star_from_repeated_runs():
    rng = np.random.default_rng(0)
    unique = np.repeat([1e8, 4e8, 1.6e9], 12)
    epochs = np.tile(np.array([1, 2, 4, 8, 16, 40]), 6)
    n = np.tile(np.repeat([2e7, 3e9], 6), 3)
    d = unique * epochs
    loss = TRUE.loss(n, d, unique) * np.exp(rng.normal(0, 1e-4, n.size))
    points = Points(n, d, loss, ("x",) * n.size, unique)
    fit = fit_data_constrained(points, BASE)
    assert fit.law.R_D_star == pytest.approx(15.4, rel=0.05)
    assert fit.law.R_N_star == pytest.approx(5.3, rel=0.05)


def test_needs_unique_tokens():
    points = Points(np.ones(6) * 1e8, np.geomspace(1e9, 1e10, 6), np.ones(6) * 3, ("x",) * 6)
    with pytest.raises(ScalingDataError, match="needs the unique tokens"):
        fit_data_constrained(points, BASE)
