"""Online fine-tuning of a candidate-scoring policy on a real campaign, replayed from its ledger.

On train.py the agent keeps no memory between proposals: the ledger is its memory. So the policy
that proposes is rebuilt each time from the shipped weights and taken through the campaign's
decided candidates in order: each one becomes the policy's step where it is one of the candidates
the policy is offered in that state (the same features, the episode length the proposal recorded),
the keep rule's reward is its reward, and every full rollout is one PPO update, as the simulated
campaigns fine-tune. The result is a pure function of the ledger: a controller killed anywhere
resumes with the very policy an unbroken one would have, without a checkpoint.

What a step offers the policy depends on the history before it, not on the weights: those features
(about 30 ms per step) are kept in a `FeatureCache` keyed by that history, so a live campaign pays
them once per candidate, and a restarted controller once per candidate on its first proposal.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING

from autoresearch_rl.core.state import CampaignState

if TYPE_CHECKING:  # torch loads only when a policy is built
    from autoresearch_rl.agent.search.candidate_ppo import CandidatePPO, Features


class FeatureCache:
    """Features of replayed steps by (a key of the history before the step, horizon); a pure memo, bounded."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._store: OrderedDict[tuple[Hashable, int], Features] = OrderedDict()

    def get(self, agent: CandidatePPO, history_key: Hashable, state: CampaignState) -> Features:
        key = (history_key, agent.horizon)
        if key not in self._store:
            self._store[key] = agent.features(state)
            while len(self._store) > self.size:
                self._store.popitem(last=False)
        return self._store[key]


def replay(agent: CandidatePPO, steps: Iterable[tuple[CampaignState, CampaignState, int, Hashable]],
           cache: FeatureCache | None = None) -> int:
    """Fine-tune `agent` on (state before, state after, horizon, key of the history before) per decided
    candidate, oldest first; the updates made."""
    updates = 0
    if not agent.learn:
        return updates  # frozen weights: nothing to replay
    cache = cache or FeatureCache()
    for before, after, horizon, history_key in steps:
        agent.horizon = horizon
        experiment = after.experiments[-1]
        if agent.record(before, experiment.config, cache.get(agent, history_key, before)):
            agent.observe(after, experiment)
        if agent.ready():
            agent.update(after)
            updates += 1
    return updates
