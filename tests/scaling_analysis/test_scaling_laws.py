"""Log-space forms and compute-optimal allocations against finite differences and brute force."""

import numpy as np
import pytest

from scaling_analysis.laws import CHINCHILLA, KAPLAN, ChinchillaLaw, KaplanLaw, chinchilla_theta

CHIN = ChinchillaLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)  # Hoffmann et al. 2022
KAP = KaplanLaw(N_c=6.4e13, D_c=1.8e13, alpha_n=0.076, alpha_d=0.103)  # Kaplan et al. eq. 1.5


@pytest.mark.parametrize(
    ("form", "theta"),
    [
        (CHINCHILLA, chinchilla_theta(CHIN)),
        (KAPLAN, np.array([np.log(6.4e13), np.log(1.8e13), 0.076, 0.103])),
    ],
)
def test_log_loss_matches_the_law_and_its_gradient_finite_differences(form, theta):
    rng = np.random.default_rng(0)
    log_n = rng.uniform(np.log(1e7), np.log(1e11), (1, 30))
    log_d = rng.uniform(np.log(1e9), np.log(1e13), (1, 30))
    log_l, jac = form.log_loss(theta[None], log_n, log_d)
    direct = form.coefficients(theta).loss(np.exp(log_n), np.exp(log_d))
    np.testing.assert_allclose(np.exp(log_l), direct, rtol=1e-12)
    for k in range(len(theta)):
        step = np.zeros_like(theta)
        step[k] = 1e-6
        hi, _ = form.log_loss((theta + step)[None], log_n, log_d)
        lo, _ = form.log_loss((theta - step)[None], log_n, log_d)
        np.testing.assert_allclose(jac[k], (hi - lo) / 2e-6, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("law", [CHIN, KAP])
def test_compute_optimal_is_the_brute_force_minimum_along_c_6nd(law):
    for flops in (1e20, 5.76e23):  # 5.76e23: Chinchilla's own budget
        n_opt, d_opt = law.compute_optimal(flops)
        assert float(6 * n_opt * d_opt) == pytest.approx(flops)
        n_grid = np.geomspace(1e6, 1e15, 400_001)
        brute = n_grid[np.argmin(law.loss(n_grid, flops / (6 * n_grid)))]
        assert float(n_opt) == pytest.approx(brute, rel=1e-3)


def test_optimal_n_for_tokens_inverts_compute_optimal():
    n_opt, d_opt = CHIN.compute_optimal(1e22)
    assert float(CHIN.optimal_n_for_tokens(d_opt)) == pytest.approx(float(n_opt), rel=1e-9)
