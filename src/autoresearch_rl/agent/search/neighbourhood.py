"""What local agents share: the incumbent's one-knob neighbours, which of them were measured, a seeded draw."""

from __future__ import annotations

import numpy as np

from autoresearch_rl.core.space import Config, DiscreteSpace
from autoresearch_rl.core.state import CampaignState


def step_rng(seed: int, iteration: int, salt: str) -> np.random.Generator:
    """Randomness from (campaign seed, iteration): a resumed campaign draws what an unbroken one would."""
    return np.random.default_rng([sum(ord(ch) * 31**i for i, ch in enumerate(salt)) % 2**31, seed, iteration])


def untried_neighbours(space: DiscreteSpace, state: CampaignState) -> tuple[list[Config], list[Config]]:
    """(one-knob neighbours of the incumbent never measured, all neighbours)."""
    everything = space.neighbours(state.incumbent)
    counts = state.measurement_counts
    return [c for c in everything if c not in counts], everything


def pick(rng: np.random.Generator, options: list[Config]) -> Config:
    return options[int(rng.integers(len(options)))]
