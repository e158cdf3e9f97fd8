"""Regularized evolution (Real et al., 2019): an aging population, tournament selection, one-knob mutation.

The population is the last `population` measured configurations (the start first): aging is a
sliding window over the campaign's own history, so the agent is a pure function of the state.
A tournament of `tournament` members picks the parent with the best measured value; the child
changes one knob to another choice, preferring configurations never measured.
"""

from __future__ import annotations

from autoresearch_rl.agent.search.neighbourhood import pick, step_rng
from autoresearch_rl.core.proposer import Proposal
from autoresearch_rl.core.space import DiscreteSpace
from autoresearch_rl.core.state import CampaignState, Experiment


class RegularizedEvolution:
    name = "evolution"

    def __init__(self, space: DiscreteSpace, seed: int = 0, population: int = 20, tournament: int = 5) -> None:
        self.space, self.seed = space, seed
        self.population, self.tournament = population, tournament

    def propose(self, state: CampaignState) -> Proposal:
        rng = step_rng(self.seed, state.iterations, self.name)
        members = [(state.start, state.baseline)] + [(e.config, e.value) for e in state.edits if e.outcome == "scored"]
        members = members[-self.population:]
        picks = rng.choice(len(members), size=min(self.tournament, len(members)), replace=False)
        parent = min((members[int(i)] for i in picks), key=lambda m: m[1] if m[1] is not None else float("inf"))[0]
        children = self.space.neighbours(parent)
        fresh = [c for c in children if c not in state.measurement_counts]
        return Proposal(pick(rng, fresh or children))

    def observe(self, state: CampaignState, experiment: Experiment) -> None:
        pass
