"""Model-based local search: a Gaussian process on every measurement; the untried neighbour of highest EI.

The surrogate (scikit-learn's GP: constant x Matern 5/2 on a one-hot encoding, plus white noise, so it
assumes no order among a knob's choices and learns the seed noise) is refit on all measurements
after each decision; its kernel hyperparameters are re-optimised every `refit_every` decisions and
reused in between (a fit is then one Cholesky); they are tuned on a fixed prefix of the measurements, so the
agent is a pure function of the campaign state. Expected improvement is taken against the lowest
predicted mean among measured configurations (noisy EI), over the incumbent's one-knob neighbours
never measured (all neighbours once none is left). Crashed runs are left out of the fit.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from autoresearch_rl.agent.search.neighbourhood import pick, step_rng, untried_neighbours
from autoresearch_rl.core.proposer import Proposal
from autoresearch_rl.core.space import Config, DiscreteSpace
from autoresearch_rl.core.state import CampaignState, Experiment

MIN_POINTS = 4  # distinct measured configurations before the model is trusted


def one_hot(space: DiscreteSpace, configs: list[Config]) -> np.ndarray:
    offsets = np.cumsum((0,) + space.sizes[:-1])
    x = np.zeros((len(configs), sum(space.sizes)))
    for row, c in enumerate(configs):
        x[row, offsets + np.asarray(c)] = 1.0
    return x


def expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """EI for minimisation."""
    from scipy.stats import norm

    sd = np.maximum(sd, 1e-12)
    z = (best - mu) / sd
    return (best - mu) * norm.cdf(z) + sd * norm.pdf(z)


class GPLocalSearch:
    name = "gp_local"

    def __init__(self, space: DiscreteSpace, seed: int = 0, refit_every: int = 10) -> None:
        self.space, self.seed, self.refit_every = space, seed, refit_every
        self._kernel = None
        self._anchor = -1  # how many measurements the kernel hyperparameters were tuned on

    def _fit(self, x: np.ndarray, y: np.ndarray, kernel, tune: bool):
        from sklearn.gaussian_process import GaussianProcessRegressor

        gp = GaussianProcessRegressor(kernel, normalize_y=True, optimizer="fmin_l_bfgs_b" if tune else None,
                                      random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp.fit(x, y)
        return gp

    def _model(self, x: np.ndarray, y: np.ndarray):
        """Tune the kernel on the first multiple of `refit_every` measurements, fit on all: a pure function of
        the measurements, so a resumed campaign proposes what an unbroken one would."""
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        anchor = max(MIN_POINTS, (len(y) // self.refit_every) * self.refit_every)
        if anchor != self._anchor:
            default = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(1.0, (0.05, 20.0), nu=2.5) + WhiteKernel(0.1, (1e-6, 1.0))
            self._kernel = self._fit(x[:anchor], y[:anchor], default, tune=True).kernel_
            self._anchor = anchor
        return self._fit(x, y, self._kernel, tune=False)

    def propose(self, state: CampaignState) -> Proposal:
        rng = step_rng(self.seed, state.iterations, self.name)
        untried, everything = untried_neighbours(self.space, state)
        options = untried or everything
        points = [(c, v) for c, v in state.observations if v is not None]
        if len({c for c, _ in points}) < MIN_POINTS:
            return Proposal(pick(rng, options))
        configs = [c for c, _ in points]
        y = np.array([v for _, v in points])
        gp = self._model(one_hot(self.space, configs), y)
        seen = sorted(set(configs))
        best = float(gp.predict(one_hot(self.space, seen)).min())
        mu, sd = gp.predict(one_hot(self.space, options), return_std=True)
        ei = expected_improvement(mu, sd, best)
        top = np.flatnonzero(ei >= ei.max() - 1e-15)
        choice = options[int(top[int(rng.integers(len(top)))])]
        return Proposal(choice, info={"ei": float(ei.max()) if math.isfinite(float(ei.max())) else 0.0})

    def observe(self, state: CampaignState, experiment: Experiment) -> None:
        pass
