"""Learning curves: fit L(t) = a·t^(-b) + c to a training-loss curve, extrapolate it, say how sure we are.

Numpy only. For a fixed exponent b the model is linear in (a, c), so each b has a closed-form
least-squares solution under the bounds a >= 0, 0 <= c <= min(loss) (a 2-variable box-constrained
quadratic: its minimum is the interior solution or lies on one edge of the box). The exponent is
found by a coarse grid over [0.05, 3], then zooming in around the best grid value.

Uncertainty of a prediction (`predict_std`) has two parts, combined in quadrature:
  * noise, at the fitted b: the standard error of the fitted mean of an ordinary linear regression
    on the feature x = t^(-b), rmse · sqrt(1/n + (x0 - x̄)² / Sxx). It grows with the distance of
    the extrapolation from the data, in the model's own coordinate;
  * the exponent, which the data rarely pin down: the largest change of the prediction over the
    exponents whose fit is about one standard error worse than the best (the profile-likelihood
    interval: SSE(b) <= SSE_min · (1 + 1/(n - 3)), roughly 68%).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

B_BOUNDS = (0.05, 3.0)  # exponent range: flatter than 0.05 is a constant, steeper than 3 is not a learning curve
_COARSE = 48  # grid points over B_BOUNDS (geometric)
_ZOOM_POINTS, _ZOOMS = 17, 5  # then zoom on the best one (and on each end of its interval): 5 rounds of 17 points


@dataclass(frozen=True)
class PowerLawFit:
    """L(t) = a·t^(-b) + c, fitted to n points; rmse is the residual standard deviation (3 parameters)."""

    a: float
    b: float
    c: float
    rmse: float
    n: int
    x_mean: float = 0.0  # mean of t^(-b) over the fitted points (for predict_std)
    x_sxx: float = 0.0  # sum of squared deviations of t^(-b) from its mean
    alternatives: tuple[tuple[float, float, float], ...] = ()  # (a, b, c) at the ends of the exponent's interval

    def predict(self, t: float | np.ndarray) -> float | np.ndarray:
        return self.a * np.power(t, -self.b) + self.c

    def predict_std(self, t: float, noise: float | None = None) -> float:
        """Standard error of the predicted mean loss at t (see the module docstring).

        `noise` replaces the fit's own rmse as the per-point noise when a better estimate exists.
        """
        x0 = t ** -self.b
        leverage = 1.0 / self.n + ((x0 - self.x_mean) ** 2 / self.x_sxx if self.x_sxx > 0 else 0.0)
        noise = (self.rmse if noise is None else noise) * math.sqrt(leverage)
        here = float(self.predict(t))
        shape = max((abs(a * t ** -b + c - here) for a, b, c in self.alternatives), default=0.0)
        return math.hypot(noise, shape)


    def difference_std(self, t: float, t0: float, noise: float | None = None) -> float:
        """Standard error of predict(t) - predict(t0): what both predictions share (the level) cancels."""
        dx = t ** -self.b - t0 ** -self.b
        noise = (self.rmse if noise is None else noise) * (abs(dx) / math.sqrt(self.x_sxx) if self.x_sxx > 0 else 0.0)
        here = float(self.predict(t)) - float(self.predict(t0))
        shape = max((abs(a * (t ** -b - t0 ** -b) - here) for a, b, c in self.alternatives), default=0.0)
        return math.hypot(noise, shape)


def _best_ac(x: np.ndarray, y: np.ndarray, c_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row of x (one exponent each, shape (B, n)): the least-squares (a, c) in the box, and its SSE.

    The candidates are the unconstrained solution (when feasible) and the best point of each edge
    that can hold the minimum: a = 0, c = 0, c = c_max.
    """
    n = x.shape[1]
    sx, sxx, sy, sxy = x.sum(1), (x * x).sum(1), y.sum(), x @ y

    def sse(a: np.ndarray, c: np.ndarray) -> np.ndarray:  # from the residuals: the expanded form cancels badly
        return ((y[None, :] - a[:, None] * x - c[:, None]) ** 2).sum(1)

    var = sxx - sx * sx / n
    with np.errstate(divide="ignore", invalid="ignore"):
        a_free = np.where(var > 0, (sxy - sx * sy / n) / var, -1.0)
        a_c0 = np.maximum(0.0, np.where(sxx > 0, sxy / sxx, 0.0))
        a_cmax = np.maximum(0.0, np.where(sxx > 0, (sxy - c_max * sx) / sxx, 0.0))
    c_free = (sy - a_free * sx) / n
    c_a0 = np.full_like(sx, min(max(sy / n, 0.0), c_max))
    cands = [(np.zeros_like(sx), c_a0), (a_c0, np.zeros_like(sx)), (a_cmax, np.full_like(sx, c_max))]
    best_a, best_c = cands[0]
    best = sse(best_a, best_c)
    for a, c in cands[1:]:
        s = sse(a, c)
        take = s < best
        best_a, best_c, best = np.where(take, a, best_a), np.where(take, c, best_c), np.where(take, s, best)
    feasible = (a_free >= 0) & (c_free >= 0) & (c_free <= c_max)
    s = sse(a_free, c_free)
    take = feasible & (s < best)
    return np.where(take, a_free, best_a), np.where(take, c_free, best_c), np.where(take, s, best)


def _interval_end(solve: Callable[[np.ndarray], tuple[np.ndarray, ...]], inside: float, out: float,
                  limit: float) -> float:
    """The exponent between `inside` (SSE <= limit) and `out` where SSE crosses `limit`, or `out` if it never does."""
    for _ in range(_ZOOMS):  # each round narrows the bracket _ZOOM_POINTS - 1 times
        grid = np.linspace(inside, out, _ZOOM_POINTS)
        over = np.flatnonzero(solve(grid)[2] > limit)
        if over.size == 0:
            return out
        inside, out = float(grid[max(over[0] - 1, 0)]), float(grid[over[0]])
    return inside


def fit_power_law(t: Sequence[float] | np.ndarray, loss: Sequence[float] | np.ndarray, *,
                  skip_fraction: float = 0.0) -> PowerLawFit:
    """Fit L(t) = a·t^(-b) + c with a >= 0, b in B_BOUNDS, 0 <= c <= min(loss).

    Points with t < skip_fraction · max(t) are ignored: the first steps fall faster than any power
    law (and t^(-b) explodes near 0). Non-finite points and t <= 0 are ignored too. Raises
    ValueError when fewer than 3 points remain.
    """
    t_arr, y = np.asarray(t, dtype=float), np.asarray(loss, dtype=float)
    if t_arr.shape != y.shape:
        raise ValueError(f"t and loss differ in length ({t_arr.size} vs {y.size})")
    keep = np.isfinite(t_arr) & np.isfinite(y) & (t_arr > 0)
    if keep.any():
        keep &= t_arr >= skip_fraction * t_arr[keep].max()
    t_arr, y = t_arr[keep], y[keep]
    n = int(t_arr.size)
    if n < 3:
        raise ValueError(f"a power-law fit needs at least 3 points, got {n}")
    t_ref = float(t_arr.max())  # fit on u = t / t_ref in (0, 1] for conditioning; a is converted back below
    u = t_arr / t_ref
    c_max = max(0.0, float(y.min()))

    def solve(bs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _best_ac(np.power(u[None, :], -bs[:, None]), y, c_max)

    lo, hi = B_BOUNDS
    coarse = np.geomspace(lo, hi, _COARSE)
    sse_coarse = solve(coarse)[2]
    i = int(np.argmin(sse_coarse))
    left, right = coarse[max(i - 1, 0)], coarse[min(i + 1, _COARSE - 1)]
    for _ in range(_ZOOMS):  # zoom in on the best exponent
        grid = np.linspace(left, right, _ZOOM_POINTS)
        k = int(np.argmin(solve(grid)[2]))
        left, right = grid[max(k - 1, 0)], grid[min(k + 1, _ZOOM_POINTS - 1)]
    a_best, c_best, sse_best = (float(v[0]) for v in solve(np.array([grid[k]])))
    b = float(grid[k])
    dof = max(n - 3, 1)
    rmse = math.sqrt(sse_best / dof)

    # the exponent's interval: where SSE(b) <= SSE_min·(1 + 1/dof), about one standard error (profile likelihood)
    limit = sse_best * (1.0 + 1.0 / dof) + 1e-15
    ends = []
    for outward in (coarse[::-1][coarse[::-1] < b], coarse[coarse > b]):  # towards lo, towards hi
        beyond = outward[sse_coarse[np.searchsorted(coarse, outward)] > limit]
        out = float(beyond[0]) if beyond.size else float(outward[-1]) if outward.size else b
        ends.append(_interval_end(solve, b, out, limit))
    alternatives = []
    for end in ends:
        if end != b:
            a_e, c_e, _ = (float(v[0]) for v in solve(np.array([end])))
            alternatives.append((a_e * t_ref ** end, end, c_e))
    x = np.power(t_arr, -b)
    return PowerLawFit(a=a_best * t_ref ** b, b=b, c=c_best, rmse=rmse, n=n, x_mean=float(x.mean()),
                       x_sxx=float(((x - x.mean()) ** 2).sum()), alternatives=tuple(alternatives))


def compact_curve(elapsed: Sequence[float], loss: Sequence[float], tokens: Sequence[int | None] | None = None,
                  max_points: int = 512) -> list[list[float]]:
    """[[elapsed, loss(, tokens)], ...] decimated evenly to at most max_points (first and last kept): small
    enough to store. Tokens (when every point has them) let another run pair its losses with these."""
    n = len(elapsed)
    idx = np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(int)) if n else []
    with_tokens = tokens is not None and len(tokens) == n and all(t is not None for t in tokens)
    return [[round(float(elapsed[i]), 3), float(f"{loss[i]:.6g}")] + ([int(tokens[i])] if with_tokens else [])
            for i in idx]
