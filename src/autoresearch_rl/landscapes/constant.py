"""A landscape where every configuration is equally good: the null hypothesis of research.

Every kept edit on it is a false keep, so it measures how often a keep rule (or a drifting machine)
mistakes noise for progress. `constant[:dim=6,choices=6,value=1.0,noise=0.02]`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from autoresearch_rl.core.space import Config, DiscreteSpace


@dataclass(frozen=True)
class ConstantConfig:
    dim: int = 6
    choices: int = 6
    value: float = 1.0  # the true value of every configuration
    noise: float = 0.02  # seed noise of one measurement (same units)

    @classmethod
    def parse(cls, text: str) -> ConstantConfig:
        config = cls()
        types = {f.name: f.type for f in fields(cls)}
        for part in filter(None, text.split(",")):
            key, eq, raw = part.partition("=")
            if not eq or key not in types:
                raise ValueError(f"expected KEY=VALUE with KEY in {sorted(types)}, got {part!r}")
            config = replace(config, **{key: int(raw) if key in ("dim", "choices") else float(raw)})
        if config.dim < 1 or config.choices < 2 or config.noise < 0:
            raise ValueError("a constant landscape needs dim >= 1, choices >= 2 and noise >= 0")
        return config


class ConstantLandscape:
    def __init__(self, config: ConstantConfig = ConstantConfig()) -> None:
        self.config = config
        self.name = "constant"
        self.space = DiscreteSpace(tuple(f"x{k}" for k in range(config.dim)),
                                   tuple(tuple(range(config.choices)) for _ in range(config.dim)))
        self.noise_sigma = config.noise

    def evaluate(self, config: Config, rng: np.random.Generator) -> float | None:
        return self.config.value + self.config.noise * float(rng.standard_normal())

    def true_value(self, config: Config) -> float:
        return self.config.value

    def true_values(self, configs: list[Config]) -> np.ndarray:
        return np.full(len(configs), self.config.value)

    @property
    def optimum(self) -> float:
        return self.config.value
