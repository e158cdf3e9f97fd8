"""`Executor`: runs one configuration and returns what happened. Here: the in-memory landscape executor.

The measurement's randomness comes from a seed the loop derives from (campaign seed, configuration,
how many times it was measured before), so every agent on a seed sees the same noise for the same
measurement: comparisons between agents are paired.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from autoresearch_rl.core.events import Crashed, Scored
from autoresearch_rl.core.space import Config


class Executor(Protocol):
    def run(self, exp: int, config: Config, seed: tuple[int, ...]) -> Scored | Crashed: ...


class LandscapeExecutor:
    """Measures a configuration on a simulated landscape, in microseconds."""

    def __init__(self, landscape: object) -> None:
        self.landscape = landscape

    def run(self, exp: int, config: Config, seed: tuple[int, ...]) -> Scored | Crashed:
        rng = np.random.default_rng(seed)
        measure = getattr(self.landscape, "measure", None)  # a drifting machine: value and throughput at run `exp`
        if measure is not None:
            value, throughput = measure(config, rng, exp)
        else:
            value, throughput = self.landscape.evaluate(config, rng), None  # type: ignore[attr-defined]
        cost_of = getattr(self.landscape, "cost_s", None)
        cost = (cost_of(config) if cost_of is not None else None) or 0.0
        if value is None or not np.isfinite(value):
            return Crashed(exp, "the landscape crashes here", cost_s=cost)
        return Scored(exp, float(value), cost_s=cost, throughput=throughput)
