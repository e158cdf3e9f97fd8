"""The landscape protocol, the start state of a seed, and the score every benchmark uses.

A landscape is a discrete space with a noisy measurement (`evaluate`: one training seed's value, or
None for a crash) and, for scoring only, the noise-free `true_value` and the `optimum`. Lower is
better everywhere: an adapter of a maximised metric negates it. Agents never see `true_value`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from autoresearch_rl.core.space import Config, DiscreteSpace

START_PERCENTILES = (40.0, 60.0)  # a mediocre but not terrible incumbent, as in a real campaign
MAX_REFERENCE_SAMPLES = 4096  # spaces larger than this are sampled to place the start percentiles


@runtime_checkable
class Landscape(Protocol):
    name: str
    space: DiscreteSpace

    def evaluate(self, config: Config, rng: np.random.Generator) -> float | None:
        """One noisy measurement (lower is better); None when the configuration crashes."""
        ...

    def true_value(self, config: Config) -> float:
        """The noise-free value (for scoring only; a crashing configuration may return +inf)."""
        ...

    @property
    def optimum(self) -> float:
        """The lowest true value in the space (a lower bound where the space is too large to enumerate)."""
        ...


def reference_values(landscape: Landscape, rng: np.random.Generator) -> tuple[list[Config], np.ndarray]:
    """Configurations with their true values: the whole space when small, else a uniform sample."""
    space = landscape.space
    if space.size <= 50_000:
        configs = list(space.all_configs())
    else:
        configs = [space.random_config(rng) for _ in range(MAX_REFERENCE_SAMPLES)]
    batch = getattr(landscape, "true_values", None)  # a vectorised landscape scores the whole space at once
    if batch is not None:
        values = np.asarray(batch(configs), dtype=np.float64)
    else:
        values = np.array([landscape.true_value(c) for c in configs], dtype=np.float64)
    return configs, values


def start_config(landscape: Landscape, seed: int, percentiles: tuple[float, float] = START_PERCENTILES) -> Config:
    """A start drawn uniformly among configurations whose true value lies in the given percentile band.

    Depends only on (landscape, seed), so every agent on a seed starts from the same incumbent.
    """
    cache = getattr(landscape, "_start_cache", None)
    if cache is None:
        configs, values = reference_values(landscape, np.random.default_rng([0x5EED, 7]))
        finite = np.isfinite(values)
        configs = [c for c, ok in zip(configs, finite) if ok]
        values = values[finite]
        lo, hi = np.percentile(values, percentiles)
        band = [c for c, v in zip(configs, values) if lo <= v <= hi]
        cache = band or configs
        try:
            landscape._start_cache = cache  # type: ignore[attr-defined]
        except AttributeError:
            pass
    rng = np.random.default_rng([0x5EED, int(seed)])
    return cache[int(rng.integers(len(cache)))]


def normalized_regret(value: float, start: float, optimum: float) -> float:
    """(f(inc) - f*) / (f(start) - f*); 0 where the start is already optimal (a flat landscape is valid input)."""
    gap = start - optimum
    if not gap > 1e-12 * max(1.0, abs(optimum)):
        return 0.0
    return float((value - optimum) / gap)
