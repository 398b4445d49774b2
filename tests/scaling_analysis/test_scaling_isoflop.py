"""IsoFLOP profiles (approach 2) recover the allocation exponent of a known law."""

import numpy as np
import pytest

from scaling_analysis.isoflop import isoflop
from scaling_analysis.laws import ChinchillaLaw
from scaling_analysis.points import Points, ScalingDataError

TRUE = ChinchillaLaw(E=1.7, A=400.0, B=1500.0, alpha=0.34, beta=0.30)
EXPECTED_N = TRUE.beta / (TRUE.alpha + TRUE.beta)  # N_opt ~ C^(beta/(alpha+beta)), eq. 4


def test_binned_final_losses():
    budgets = np.geomspace(1e18, 1e21, 4)
    centre = TRUE.compute_optimal(budgets)[0]
    n = np.concatenate([m * np.geomspace(0.25, 4, 9) for m in centre])
    d = np.repeat(budgets, 9) / (6 * n)
    points = Points(n, d, TRUE.loss(n, d), tuple(f"m{i}" for i in range(len(n))))
    iso = isoflop(points, n_budgets=4, method="bins")
    assert len(iso.profiles) == 4
    assert iso.exponent_n == pytest.approx(EXPECTED_N, abs=0.02)
    assert iso.exponent_n + iso.exponent_d == pytest.approx(1.0)


def test_loss_curves_interpolated_at_each_budget():
    sizes = np.geomspace(1e7, 1e10, 10)
    d = np.geomspace(1e8, 1e12, 40)
    n_all, d_all = np.repeat(sizes, len(d)), np.tile(d, len(sizes))
    groups = tuple(f"run-{x:.2e}" for x in n_all)
    points = Points(n_all, d_all, TRUE.loss(n_all, d_all), groups)
    iso = isoflop(points, n_budgets=6)
    assert len(iso.profiles) >= 3
    assert iso.exponent_n == pytest.approx(EXPECTED_N, abs=0.03)
    # each minimum is near the closed-form optimum of the law at that budget
    n_opt = TRUE.compute_optimal(iso.budgets)[0]
    np.testing.assert_allclose(iso.n_opt, n_opt, rtol=0.25)


def test_no_valley_is_a_clear_error():
    n = np.array([1e6, 2e6, 4e6, 8e6])
    points = Points(n, 1e9 / n, 3.0 - np.log(n) / 10, ("x",) * 4)
    with pytest.raises(ScalingDataError, match=r"file\(s\) found 0 usable budget"):
        isoflop(points)
