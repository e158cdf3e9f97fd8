"""Power-law fits of learning curves: known parameters come back, bounds hold, uncertainty is honest, fits are fast."""

from __future__ import annotations

import time

import numpy as np
import pytest

from autoresearch_rl.selfeval.curves import B_BOUNDS, compact_curve, fit_power_law


def _curve(a: float, b: float, c: float, n: int = 200, noise: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.02, 1.0, n)
    return t, a * t**-b + c + np.random.default_rng(seed).normal(0.0, noise, n)


@pytest.mark.parametrize(("a", "b", "c"), [(2.0, 0.5, 3.0), (0.5, 1.2, 1.0), (3.0, 0.2, 0.5), (1.0, 2.5, 4.0)])
def test_fit_recovers_known_parameters_from_a_noisy_curve(a: float, b: float, c: float) -> None:
    t, y = _curve(a, b, c, noise=0.01, seed=1)
    fit = fit_power_law(t, y)
    assert fit.n == 200
    assert fit.b == pytest.approx(b, rel=0.1)
    assert fit.a == pytest.approx(a, rel=0.15)
    assert fit.c == pytest.approx(c, abs=0.1)
    assert fit.rmse == pytest.approx(0.01, rel=0.2)
    assert float(fit.predict(1.0)) == pytest.approx(a + c, abs=0.01)


def test_fit_is_exact_on_a_noiseless_curve() -> None:
    t, y = _curve(2.0, 0.7, 3.0)
    fit = fit_power_law(t, y)
    assert (fit.a, fit.b, fit.c) == pytest.approx((2.0, 0.7, 3.0), rel=1e-3)
    assert fit.rmse < 1e-3


def test_bounds_hold_on_a_curve_no_power_law_fits() -> None:
    t = np.linspace(0.1, 1.0, 30)
    y = 4.0 + 2.0 * t  # rising: the best bounded fit is a constant
    fit = fit_power_law(t, y)
    assert fit.a >= 0 and B_BOUNDS[0] <= fit.b <= B_BOUNDS[1] and 0 <= fit.c <= y.min()
    assert float(fit.predict(0.5)) == pytest.approx(y.mean(), abs=0.05)


def test_early_points_before_the_skip_fraction_do_not_bend_the_fit() -> None:
    t, y = _curve(2.0, 0.5, 3.0, noise=0.005, seed=2)
    y_bad = y.copy()
    y_bad[t < 0.08] = 20.0  # a warm-up spike in the first steps
    fit = fit_power_law(t, y_bad, skip_fraction=0.1)
    assert fit.b == pytest.approx(0.5, rel=0.1) and float(fit.predict(1.0)) == pytest.approx(5.0, abs=0.01)
    assert fit.n == int((t >= 0.1).sum())


def test_fewer_than_three_usable_points_raise() -> None:
    with pytest.raises(ValueError, match="at least 3 points"):
        fit_power_law([0.1, 0.2], [5.0, 4.0])
    with pytest.raises(ValueError, match="at least 3 points"):
        fit_power_law([0.1, 0.2, 0.3, 0.4], [5.0, float("nan"), 4.5, float("inf")])
    fit_power_law([0.1, 0.2, 0.3], [5.0, 4.6, 4.4])  # three is enough


def test_uncertainty_grows_with_the_extrapolation_distance() -> None:
    t, y = _curve(2.0, 0.5, 3.0, noise=0.02, seed=3)
    fit = fit_power_law(t[t <= 0.3], y[t <= 0.3])
    assert fit.predict_std(0.3) < fit.predict_std(0.6) < fit.predict_std(1.0)


def test_extrapolation_errors_match_the_stated_uncertainty() -> None:
    """Fit the first 30% of 300 noisy curves, predict the end: |error| / std behaves like a standard normal."""
    rng = np.random.default_rng(4)
    t = np.linspace(0.01, 1.0, 100)
    z = []
    for _ in range(300):
        y = 2.0 * t**-0.5 + 3.0 + rng.normal(0.0, 0.03, t.size)
        fit = fit_power_law(t[:30], y[:30], skip_fraction=0.1)
        z.append((float(fit.predict(1.0)) - 5.0) / fit.predict_std(1.0))
    z_arr = np.abs(np.array(z))
    assert 0.02 < np.mean(z_arr > 2.0) < 0.10  # 4.6% for a standard normal
    assert np.mean(z_arr > 3.0) < 0.02


def test_a_fit_of_a_300_point_curve_takes_well_under_50_ms() -> None:
    t, y = _curve(2.0, 0.5, 3.0, n=300, noise=0.02)
    best = min(_timed(lambda: fit_power_law(t, y, skip_fraction=0.1)) for _ in range(5))
    assert best < 0.02


def _timed(f) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def test_compact_curve_keeps_at_most_max_points_with_both_ends() -> None:
    elapsed, loss = list(np.linspace(0.0, 300.0, 1000)), list(np.linspace(9.0, 3.0, 1000))
    curve = compact_curve(elapsed, loss, max_points=200)
    assert len(curve) == 200
    assert curve[0] == [0.0, 9.0] and curve[-1] == [300.0, 3.0]
    assert all(a[0] < b[0] for a, b in zip(curve, curve[1:]))
    assert compact_curve([1.0, 2.0], [5.0, 4.0]) == [[1.0, 5.0], [2.0, 4.0]]
    assert compact_curve([], []) == []
