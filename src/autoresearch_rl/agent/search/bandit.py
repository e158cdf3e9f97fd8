"""A per-knob UCB1 bandit: which knob to edit is an arm; its payoff is the reward of the edits that changed it.

The new value of the chosen knob is drawn among the incumbent's untried neighbours along that knob
(any, once all were tried). Pure function of the state and seed.
"""

from __future__ import annotations

import math

from autoresearch_rl.agent.search.neighbourhood import pick, step_rng
from autoresearch_rl.core.proposer import Proposal
from autoresearch_rl.core.space import DiscreteSpace
from autoresearch_rl.core.state import CampaignState, Experiment


class KnobBandit:
    name = "bandit"

    def __init__(self, space: DiscreteSpace, seed: int = 0, exploration: float = 1.0) -> None:
        self.space, self.seed, self.c = space, seed, exploration

    def propose(self, state: CampaignState) -> Proposal:
        rng = step_rng(self.seed, state.iterations, self.name)
        n = [0] * len(self.space)
        total = [0.0] * len(self.space)
        for e in state.edits:
            if e.reward is None or e.parent is None:
                continue
            k = self.space.changed_knob(state.experiments[e.parent].config, e.config)
            if k is not None:
                n[k] += 1
                total[k] += e.reward / 5.0  # rewards are clipped to +-5 sigma: scale the payoff to [-1, 1]
        pulls = max(1, sum(n))
        scores = [math.inf if n[k] == 0 else total[k] / n[k] + self.c * math.sqrt(2 * math.log(pulls) / n[k])
                  for k in range(len(self.space))]
        best = max(scores)
        arms = [k for k, s in enumerate(scores) if s == best and self.space.sizes[k] > 1]
        k = arms[int(rng.integers(len(arms)))] if arms else int(rng.integers(len(self.space)))
        inc = state.incumbent
        along = [inc[:k] + (v,) + inc[k + 1:] for v in range(self.space.sizes[k]) if v != inc[k]]
        fresh = [c for c in along if c not in state.measurement_counts]
        return Proposal(pick(rng, fresh or along or [inc]))

    def observe(self, state: CampaignState, experiment: Experiment) -> None:
        pass
