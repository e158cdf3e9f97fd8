"""The simplest searchers: random search and greedy local search (both pure functions of the state and seed)."""

from __future__ import annotations

from autoresearch_rl.agent.search.neighbourhood import pick, step_rng, untried_neighbours
from autoresearch_rl.core.proposer import Proposal
from autoresearch_rl.core.space import DiscreteSpace
from autoresearch_rl.core.state import CampaignState, Experiment


class RandomSearch:
    """A uniformly random configuration each time (the keep rule decides whether it replaces the incumbent)."""

    name = "random"

    def __init__(self, space: DiscreteSpace, seed: int = 0) -> None:
        self.space, self.seed = space, seed

    def propose(self, state: CampaignState) -> Proposal:
        return Proposal(self.space.random_config(step_rng(self.seed, state.iterations, self.name)))

    def observe(self, state: CampaignState, experiment: Experiment) -> None:
        pass


class GreedyLocalSearch:
    """First-improvement hill climbing: the incumbent's untried one-knob neighbours in random order, then any."""

    name = "greedy"

    def __init__(self, space: DiscreteSpace, seed: int = 0) -> None:
        self.space, self.seed = space, seed

    def propose(self, state: CampaignState) -> Proposal:
        untried, everything = untried_neighbours(self.space, state)
        return Proposal(pick(step_rng(self.seed, state.iterations, self.name), untried or everything))

    def observe(self, state: CampaignState, experiment: Experiment) -> None:
        pass
