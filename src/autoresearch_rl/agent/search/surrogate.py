"""A Bayesian additive surrogate: one effect per (knob, choice), fitted in units of the seed noise sigma.

Cheap enough to refit at every step of thousands of simulated campaigns (one small linear solve),
and scale-free by construction: targets are (value - their mean) / sigma, the observation noise
variance is 1 in those units, and the prior variance of an effect is set from the data (empirical
Bayes: the spread of the measurements beyond the noise, shared among the knobs). Predictions are a
posterior mean and standard deviation of each configuration's mean value, in sigma units.
"""

from __future__ import annotations

import numpy as np

from autoresearch_rl.core.space import Config, DiscreteSpace


MAX_PRIOR_VAR = 1e4  # (100 sigma)^2 per effect: beyond that the noise no longer matters to the fit


class AdditiveSurrogate:
    def __init__(self, space: DiscreteSpace) -> None:
        self.space = space
        self.offsets = np.cumsum((0,) + space.sizes[:-1])
        self.width = int(sum(space.sizes))
        self._mean = np.zeros(self.width)
        self._cov = np.eye(self.width)
        self.spread = 0.0  # standard deviation of the measurements, in sigma

    def encode(self, configs: list[Config]) -> np.ndarray:
        x = np.zeros((len(configs), self.width))
        if configs:
            x[np.arange(len(configs))[:, None], self.offsets + np.asarray(configs)] = 1.0
        return x

    def fit(self, configs: list[Config], values: list[float], sigma: float) -> AdditiveSurrogate:
        if not configs:
            return self
        y = np.asarray(values, dtype=np.float64)
        scale = sigma if sigma > 0 else (float(y.std()) or 1.0)
        y = (y - y.mean()) / scale
        self.spread = float(y.std())
        # per-effect variance (empirical Bayes), bounded so a near-noiseless task stays well conditioned
        prior_var = min(max(self.spread ** 2 - 1.0, 0.05) / len(self.space), MAX_PRIOR_VAR)
        x = self.encode(configs)
        precision = x.T @ x + np.eye(self.width) / prior_var
        try:
            self._cov = np.linalg.inv(precision)
        except np.linalg.LinAlgError:  # numerically singular (a degenerate design): the pseudo-inverse
            self._cov = np.linalg.pinv(precision, hermitian=True)
        self._mean = self._cov @ (x.T @ y)
        return self

    def predict(self, configs: list[Config]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of each configuration's value, in sigma (lower is better)."""
        x = self.encode(configs)
        mean = x @ self._mean
        var = np.einsum("ij,jk,ik->i", x, self._cov, x)
        return mean, np.sqrt(np.maximum(var, 1e-12))
