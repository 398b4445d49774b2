"""The batched L-BFGS against scipy's L-BFGS-B on independent problems."""

import numpy as np
from scipy.optimize import minimize

from scaling_analysis.optimize import minimize_batched

# one Rosenbrock-like problem per row, each with its own scale (as bootstrap rows have weights)
SCALES = np.array([1.0, 3.0, 10.0, 0.5])


def rosenbrock(theta, rows):
    x, y = theta[:, 0], theta[:, 1]
    s = SCALES[rows]
    value = s * ((1 - x) ** 2 + 100 * (y - x * x) ** 2)
    grad = np.stack([s * (-2 * (1 - x) - 400 * x * (y - x * x)), s * 200 * (y - x * x)], axis=1)
    return value, grad


def test_matches_scipy_on_rosenbrock_rows():
    starts = np.array([[-1.2, 1.0], [0.0, 0.0], [2.0, 2.0], [-0.5, 2.5]])
    inf = np.array([np.inf, np.inf])
    result = minimize_batched(rosenbrock, starts, -inf, inf, max_iter=2000)
    for row, start in enumerate(starts):

        def f(t, row=row):
            value, grad = rosenbrock(t[None], np.array([row]))
            return value[0], grad[0]

        reference = minimize(f, start, jac=True, method="L-BFGS-B", options={"gtol": 1e-10})
        np.testing.assert_allclose(result.theta[row], reference.x, atol=1e-4)
        np.testing.assert_allclose(result.theta[row], [1.0, 1.0], atol=1e-4)


def test_bounds_are_respected_and_active_bound_is_found():
    # minimum of (x - 2)^2 + (y + 1)^2 on [0, 1] x [0, 1] is (1, 0)
    def fun_grad(theta, rows):
        x, y = theta[:, 0], theta[:, 1]
        return (x - 2) ** 2 + (y + 1) ** 2, np.stack([2 * (x - 2), 2 * (y + 1)], axis=1)

    starts = np.array([[0.5, 0.5], [0.0, 1.0], [5.0, -3.0]])
    result = minimize_batched(fun_grad, starts, np.zeros(2), np.ones(2))
    np.testing.assert_allclose(result.theta, [[1.0, 0.0]] * 3, atol=1e-9)


def test_non_finite_starts_are_left_alone():
    def fun_grad(theta, rows):
        value = np.where(theta[:, 0] > 10, np.inf, theta[:, 0] ** 2)
        return value, 2 * theta

    result = minimize_batched(fun_grad, np.array([[20.0], [3.0]]), -np.inf, np.inf)
    assert result.value[0] == np.inf
    assert abs(result.theta[1, 0]) < 1e-6
