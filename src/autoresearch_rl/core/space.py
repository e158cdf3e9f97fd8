"""A discrete search space: knobs, each with an ordered tuple of choices; a configuration is one index per knob.

Every simulated landscape (synthetic, tabular) and every search agent speaks this language: an
incumbent configuration and edits that move one knob to another of its choices. Configurations are
tuples of ints so they hash, compare and serialise cheaply.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Config = tuple[int, ...]


class SpaceExhausted(RuntimeError):
    """Every configuration of a finite space has been measured: nothing new is left to propose."""


@dataclass(frozen=True)
class DiscreteSpace:
    """Knob names and their ordered choices (the order matters to agents that treat a knob as ordinal)."""

    knobs: tuple[str, ...]
    choices: tuple[tuple[Any, ...], ...]

    def __post_init__(self) -> None:
        if len(self.knobs) != len(self.choices) or not self.knobs:
            raise ValueError("a space needs at least one knob and one tuple of choices per knob")
        if len(set(self.knobs)) != len(self.knobs):
            raise ValueError(f"duplicate knob names in {self.knobs}")
        empty = [k for k, c in zip(self.knobs, self.choices) if len(c) < 1]
        if empty:
            raise ValueError(f"knobs without choices: {empty}")

    @classmethod
    def from_mapping(cls, space: Mapping[str, Sequence[Any]]) -> DiscreteSpace:
        return cls(tuple(space), tuple(tuple(v) for v in space.values()))

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.choices)

    @property
    def size(self) -> int:
        return int(np.prod(self.sizes, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.knobs)

    def neighbours(self, config: Config) -> list[Config]:
        """Every configuration that differs from `config` in exactly one knob (the one-knob edits)."""
        out = []
        for k, n in enumerate(self.sizes):
            for v in range(n):
                if v != config[k]:
                    out.append(config[:k] + (v,) + config[k + 1:])
        return out

    def random_config(self, rng: np.random.Generator) -> Config:
        return tuple(int(rng.integers(n)) for n in self.sizes)

    def values(self, config: Config) -> dict[str, Any]:
        """knob -> chosen value (what a tabular benchmark or a train.py wants)."""
        return {k: c[i] for k, c, i in zip(self.knobs, self.choices, config)}

    def changed_knob(self, parent: Config, child: Config) -> int | None:
        """The one knob an edit changed; None when zero or several changed."""
        diff = [k for k, (a, b) in enumerate(zip(parent, child)) if a != b]
        return diff[0] if len(diff) == 1 else None

    def all_configs(self) -> Iterator[Config]:
        """Every configuration in a fixed order (only sensible for small spaces)."""
        for flat in range(self.size):
            out = []
            for n in reversed(self.sizes):
                flat, r = divmod(flat, n)
                out.append(r)
            yield tuple(reversed(out))

    def validate(self, config: Sequence[int]) -> Config:
        config = tuple(int(i) for i in config)
        if len(config) != len(self.knobs) or any(not 0 <= i < n for i, n in zip(config, self.sizes)):
            raise ValueError(f"configuration {config} does not fit the space {dict(zip(self.knobs, self.sizes))}")
        return config
