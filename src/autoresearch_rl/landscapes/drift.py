"""A machine that drifts: any landscape, measured on a machine whose speed (and so the score) changes over time.

A wall-clock budget turns machine load into score: fewer tokens trained, a worse value. This wrapper
adds a throughput (tokens/s) to every measurement and moves both with the run index `t`:

    factor_score(t)      = 1 + score_trend * t      + (score      if t >= at else 0)
    factor_throughput(t) = 1 + throughput_trend * t + (throughput if t >= at else 0)
    value     = v + (factor_score - 1) * |f(x)|              (+30%: 30% worse, for any sign; the seed noise of v stays)
    tokens/s  = base * factor_throughput * (1 + jitter * N(0, 1))

`LANDSCAPE+drift:at=150,score=0.3,throughput=-0.3` names it; with no keys the machine is stationary
but still reports a throughput (the null case of the drift monitor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from autoresearch_rl.core.space import Config
from autoresearch_rl.landscapes.base import Landscape


@dataclass(frozen=True)
class DriftModel:
    at: int | None = None  # run index of a step change (None: no step)
    score: float = 0.0  # relative step of the score (+0.3: 30% worse)
    throughput: float = 0.0  # relative step of the throughput (-0.3: 30% slower)
    score_trend: float = 0.0  # relative change of the score per run
    throughput_trend: float = 0.0  # relative change of the throughput per run
    base: float = 1000.0  # tokens/s of the undisturbed machine
    jitter: float = 0.02  # run-to-run throughput noise, relative

    @classmethod
    def parse(cls, text: str) -> DriftModel:
        model = cls()
        names = {f.name for f in fields(cls)}
        for part in filter(None, text.split(",")):
            key, eq, raw = part.partition("=")
            if not eq or key not in names:
                raise ValueError(f"expected KEY=VALUE with KEY in {sorted(names)}, got {part!r}")
            model = replace(model, **{key: int(raw) if key == "at" else float(raw)})
        return model

    def factors(self, t: int) -> tuple[float, float]:
        stepped = self.at is not None and t >= self.at
        score = 1.0 + self.score_trend * t + (self.score if stepped else 0.0)
        speed = 1.0 + self.throughput_trend * t + (self.throughput if stepped else 0.0)
        return score, max(speed, 1e-3)


class DriftingLandscape:
    def __init__(self, inner: Landscape, model: DriftModel) -> None:
        self.inner = inner
        self.model = model
        self.name = f"{inner.name}+drift"
        self.space = inner.space

    def measure(self, config: Config, rng: np.random.Generator, t: int) -> tuple[float | None, float]:
        """(value or None for a crash, throughput) of run number `t`."""
        score_factor, speed_factor = self.model.factors(t)
        value = self.inner.evaluate(config, rng)
        speed = self.model.base * speed_factor * (1.0 + self.model.jitter * float(rng.standard_normal()))
        if value is None or not math.isfinite(value):
            return None, speed
        return value + (score_factor - 1.0) * abs(self.inner.true_value(config)), speed

    def evaluate(self, config: Config, rng: np.random.Generator) -> float | None:
        return self.inner.evaluate(config, rng)

    def true_value(self, config: Config) -> float:
        return self.inner.true_value(config)

    def true_values(self, configs: list[Config]) -> np.ndarray:
        batch = getattr(self.inner, "true_values", None)
        return np.asarray(batch(configs)) if batch else np.array([self.inner.true_value(c) for c in configs])

    @property
    def optimum(self) -> float:
        return self.inner.optimum
