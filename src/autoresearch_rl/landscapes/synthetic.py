"""A randomised synthetic landscape over a discrete space: a fast, seeded task family with a known optimum.

The config-space counterpart of `autoresearch_rl.synthetic` (which scores train.py sources): the same
construction, drawn from a seed, over `dim` ordinal knobs of `choices` values each:

    f(x) = sum_k w_k (u_k - o_k)^2                    a bowl per knob; log-normal weights (a few knobs matter)
         + sum_kl v_kl (u_k - o_k)(u_l - o_l)         `interactions` random pairs
         + sum_c e_c[x_c]                             `categorical` knobs: one effect per option, no order
         + noise * N(0, 1) per measurement            seed noise, in units of the median one-knob effect
    crash: a `fragile` knob at its top choice crashes.

u_k = x_k / (choices - 1) in [0, 1]. The noise is set relative to the landscape's own effect sizes,
so `noise=1` means one-knob moves are about as large as the noise, on every seed. The optimum is
exact when the space has at most 50,000 configurations (enumerated), else the best of a sample
refined by coordinate descent (an upper bound on f*; regret can then dip slightly below 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from autoresearch_rl.core.space import Config, DiscreteSpace

ENUMERATE_LIMIT = 50_000


@dataclass(frozen=True)
class SyntheticConfig:
    seed: int = 0  # which landscape (hidden optima, weights, effects)
    dim: int = 6  # knobs
    choices: int = 6  # values per knob
    noise: float = 0.5  # seed noise, relative to the median effect of a one-knob move
    interactions: int = 4  # interacting pairs of ordinal knobs
    interaction_scale: float = 1.0  # their strength relative to the bowls
    categorical: int = 1  # knobs whose options have unordered effects
    fragile: int = 1  # knobs that crash at their top choice

    @classmethod
    def parse(cls, text: str, seed: int) -> SyntheticConfig:
        """'dim=8,noise=1.0' (every field optional) -> config for landscape `seed`."""
        config = cls(seed=seed)
        if not text:
            return config
        names = {f.name: f.type for f in fields(cls)}
        values = {}
        for part in text.split(","):
            key, eq, raw = part.partition("=")
            if not eq or key not in names or key == "seed":
                raise ValueError(f"expected KEY=VALUE with KEY in {sorted(set(names) - {'seed'})}, got {part!r}")
            values[key] = float(raw) if key in ("noise", "interaction_scale") else int(raw)
        return replace(config, **values)


class SyntheticSpaceLandscape:
    def __init__(self, config: SyntheticConfig = SyntheticConfig()) -> None:
        if config.dim < 1 or config.choices < 2:
            raise ValueError("a synthetic landscape needs dim >= 1 and choices >= 2")
        self.config = config
        g = np.random.default_rng([0x5717, config.seed])
        d, m = config.dim, config.choices
        self.name = f"synthetic:{config.seed}"
        self.space = DiscreteSpace(tuple(f"x{k}" for k in range(d)), tuple(tuple(range(m)) for _ in range(d)))
        n_cat = min(config.categorical, d)
        self.categorical = np.zeros(d, dtype=bool)
        self.categorical[g.choice(d, n_cat, replace=False)] = True
        self.optimum_at = g.uniform(0.1, 0.9, d)
        self.weight = np.exp(g.normal(0.0, 0.8, d))
        self.option_effect = g.normal(0.0, 0.3, (d, m))
        self.pairs = []
        ordinal = np.flatnonzero(~self.categorical)
        for _ in range(min(config.interactions, len(ordinal) * (len(ordinal) - 1) // 2)):
            a, b = g.choice(ordinal, 2, replace=False)
            self.pairs.append((int(a), int(b), float(g.normal(0.0, config.interaction_scale))))
        self.fragile = [int(k) for k in g.choice(ordinal, min(config.fragile, len(ordinal)), replace=False)] if len(ordinal) else []
        self.offset = float(g.normal(0.0, 1.0))  # where the floor sits: nothing may depend on it
        pairs = self._pair_sample(g)  # (512, 2, dim): configurations and one-knob neighbours
        base_effects = np.abs(self._true_many(pairs[:, 1]) - self._true_many(pairs[:, 0]))
        self.noise_sigma = config.noise * float(np.median(base_effects)) if config.noise > 0 else 0.0
        self._optimum = self._find_optimum(g)

    # ---- construction helpers ------------------------------------------------------------------------

    def _sample(self, g: np.random.Generator, n: int) -> np.ndarray:
        return g.integers(0, self.config.choices, (n, self.config.dim))

    def _pair_sample(self, g: np.random.Generator) -> np.ndarray:
        """512 (config, one-knob neighbour) pairs: the effect sizes the noise is measured against."""
        x = self._sample(g, 512)
        y = x.copy()
        k = g.integers(0, self.config.dim, 512)
        shift = g.integers(1, self.config.choices, 512)
        y[np.arange(512), k] = (y[np.arange(512), k] + shift) % self.config.choices
        return np.stack([x, y], axis=1)

    def _true_many(self, x: np.ndarray) -> np.ndarray:
        """Noise-free values of an (n, dim) integer array."""
        u = x / (self.config.choices - 1)
        dev = u - self.optimum_at
        ordinal = ~self.categorical
        value = (self.weight * ordinal * dev ** 2).sum(axis=-1)
        for a, b, v in self.pairs:
            value = value + v * self.weight[a] ** 0.5 * self.weight[b] ** 0.5 * dev[..., a] * dev[..., b]
        for k in np.flatnonzero(self.categorical):
            value = value + self.option_effect[k][x[..., k]]
        return value + self.offset

    def _crashes(self, x: np.ndarray) -> np.ndarray:
        crash = np.zeros(x.shape[:-1], dtype=bool)
        for k in self.fragile:
            crash |= x[..., k] == self.config.choices - 1
        return crash

    def _find_optimum(self, g: np.random.Generator) -> float:
        if self.space.size <= ENUMERATE_LIMIT:
            grid = np.array(list(self.space.all_configs()))
        else:
            grid = self._sample(g, 20_000)
            starts = grid[np.argsort(self._true_many(grid))[:16]]
            refined = [self._descend(s) for s in starts]
            grid = np.concatenate([grid, np.array(refined)])
        values = self._true_many(grid)
        values[self._crashes(grid)] = np.inf
        return float(values.min())

    def _descend(self, x: np.ndarray) -> np.ndarray:
        x = x.copy()
        for _ in range(50):
            improved = False
            for k in range(self.config.dim):
                cand = np.repeat(x[None], self.config.choices, 0)
                cand[:, k] = np.arange(self.config.choices)
                vals = self._true_many(cand)
                vals[self._crashes(cand)] = np.inf
                best = int(np.argmin(vals))
                if best != x[k]:
                    x[k], improved = best, True
            if not improved:
                break
        return x

    # ---- Landscape ---------------------------------------------------------------------------------

    def true_value(self, config: Config) -> float:
        x = np.asarray(config)
        if self._crashes(x):
            return math.inf
        return float(self._true_many(x))

    def true_values(self, configs: list[Config]) -> np.ndarray:
        x = np.asarray(configs)
        values = self._true_many(x)
        values[self._crashes(x)] = np.inf
        return values

    def evaluate(self, config: Config, rng: np.random.Generator) -> float | None:
        value = self.true_value(config)
        if not math.isfinite(value):
            return None
        return value + self.noise_sigma * float(rng.standard_normal())

    @property
    def optimum(self) -> float:
        return self._optimum
