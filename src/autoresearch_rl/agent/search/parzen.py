"""TPE's density ratio over a discrete space (Bergstra et al., 2011): where good configurations cluster.

The measured configurations are split by their mean value: the best `gamma` fraction is "good", the
rest and every crashed configuration "bad". Each side gets an independent categorical per knob,
smoothed by a uniform prior of total weight 1 (Optuna's categorical Parzen estimator), so l(x) and
g(x) are products over knobs. A candidate's score is log l(x) - log g(x); samples from l recombine
the good configurations' choices. Only ranks of the measurements matter: scaling or shifting the
objective changes nothing.
"""

from __future__ import annotations

import math

import numpy as np

from autoresearch_rl.core.space import Config, DiscreteSpace

GAMMA = 0.15  # share of measured configurations that count as good
PRIOR_WEIGHT = 1.0


class ParzenRatio:
    def __init__(self, space: DiscreteSpace, means: dict[Config, float], crashed: set[Config],
                 gamma: float = GAMMA) -> None:
        self.space = space
        ranked = sorted(means, key=lambda c: means[c])
        n_good = max(1, math.ceil(gamma * len(ranked))) if ranked else 0
        good, bad = ranked[:n_good], ranked[n_good:] + sorted(crashed - set(means))
        self.informed = bool(good) and bool(bad)
        self._log_l = [self._log_probs(good, k, n) for k, n in enumerate(space.sizes)]
        self._log_g = [self._log_probs(bad, k, n) for k, n in enumerate(space.sizes)]

    @staticmethod
    def _log_probs(configs: list[Config], knob: int, size: int) -> np.ndarray:
        counts = np.full(size, PRIOR_WEIGHT / size)
        for c in configs:
            counts[c[knob]] += 1.0
        return np.log(counts / counts.sum())

    def log_ratio(self, configs: list[Config]) -> np.ndarray:
        """log l(x) - log g(x) per configuration (0 for all while good and bad are not both known)."""
        if not self.informed or not configs:
            return np.zeros(len(configs))
        x = np.asarray(configs)
        return sum(self._log_l[k][x[:, k]] - self._log_g[k][x[:, k]] for k in range(len(self.space)))

    def sample(self, rng: np.random.Generator, n: int) -> list[Config]:
        """`n` draws from l(x), the good configurations' distribution."""
        probs = [np.exp(lp) for lp in self._log_l]
        return [tuple(int(rng.choice(len(p), p=p / p.sum())) for p in probs) for _ in range(n)]
