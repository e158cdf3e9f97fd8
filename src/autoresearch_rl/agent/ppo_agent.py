"""The PPO proposer: state features -> masked actor-critic -> an edit; transitions -> PPO updates.

The learning itself (GAE, clipped surrogate, value loss, entropy, KL early stop) is in `ppo.py`;
this class only adapts it to the ask/tell protocol. Its proposals carry what PPO needs to learn
from them later (observation, mask, action, log-probability, value), so the ledger can replay any
transition recorded after the last checkpoint.

Update timing: the rollout's bootstrap value needs the state *after* its last transition, which is
the state of the next proposal, so the loop calls `update(state)` when `ready()`, just before it asks
for that proposal; `propose` never learns. A controller killed between the update and the checkpoint
redoes the same update on resume (replayed in `observe`, with the observation the proposal stored).
"""

from __future__ import annotations

import math
from typing import Any

from autoresearch_rl.agent.features import ACTION_FEATURES, ACTION_PRIOR, FeatureBuilder
from autoresearch_rl.agent.ppo import PPOConfig, PPOLearner
from autoresearch_rl.agent.protocol import Proposal, SearchState, Transition
from autoresearch_rl.target.space import ActionSpace


def floor_entropy_ratio(n: int, epsilon: float) -> float:
    """H / log n of (1 - eps) * one-hot + eps * uniform over n actions: the lowest entropy the floor permits."""
    if n <= 1:
        return 1.0
    top = 1 - epsilon + epsilon / n
    rest = epsilon / n
    h = -top * math.log(top) - ((n - 1) * rest * math.log(rest) if rest > 0 else 0.0)
    return h / math.log(n)


class PPOProposer:
    name = "ppo_edits"  # `arl run --agent ppo_edits`; named "ppo" in campaigns before the meta-trained default

    def __init__(self, base_source: str, space: ActionSpace, config: PPOConfig = PPOConfig(), seed: int = 0,
                 reward_clip: float = 5.0, action_scoring: bool = True, prior: bool = True) -> None:
        self.features = FeatureBuilder(base_source, space, reward_clip=reward_clip, per_action=action_scoring)
        self.learner = PPOLearner(self.features.dim, len(space), config, seed=seed,
                                  action_features=ACTION_FEATURES if action_scoring else 0,
                                  action_prior=ACTION_PRIOR if action_scoring and prior else None)
        self.config = config
        self.seed = seed
        self.last_metrics: dict[str, float] = {}
        self.last_entropy_ratio: float | None = None
        self._n_applicable: int | None = None

    @property
    def updates(self) -> int:
        return self.learner.updates

    @property
    def entropy_floor_ratio(self) -> float | None:
        """Entropy ratio of the most concentrated policy the exploration floor allows (at the last proposal)."""
        return None if self._n_applicable is None else floor_entropy_ratio(self._n_applicable, self.config.epsilon)

    def ready(self) -> bool:
        """A full rollout: the loop runs `update` before the next proposal."""
        return self.learner.ready

    def update(self, state: SearchState) -> dict[str, float]:
        """One PPO update on the full rollout, bootstrapped from `state` (the one the next proposal sees)."""
        self._reseed(state.iteration)
        self.last_metrics = self.learner.update(self._observation(state))
        return self.last_metrics

    def _observation(self, state: SearchState) -> list[float]:
        return [round(x, 6) for x in self.features(state)]  # exactly what the ledger stores, so replay is exact

    def propose(self, state: SearchState) -> Proposal:
        obs = self._observation(state)
        self._reseed(state.iteration)
        result = self.learner.act(obs, list(state.mask))
        self.last_entropy_ratio = result.entropy_ratio
        self._n_applicable = len(state.applicable)
        action = state.space.actions[result.action]
        info: dict[str, Any] = {
            "action": result.action,
            "logprob": result.logprob,
            "value": result.value,
            "entropy_ratio": result.entropy_ratio,
            "policy_version": self.learner.updates,
            "obs": obs,
            "applicable": [i for i, ok in enumerate(state.mask) if ok],
        }
        return Proposal(operator=action.operator, arg=action.arg, kind=action.kind, info=info)

    def observe(self, transition: Transition) -> None:
        info = transition.info
        if "obs" not in info:
            return  # proposed by another proposer (e.g. a campaign that switched agents): not on-policy data
        if self.learner.ready:
            # Only on replay after a restart: live, the loop already ran this update with this very
            # observation (the next proposal's), so replaying it here reproduces the learner exactly.
            self._reseed(transition.iteration)
            self.last_metrics = self.learner.update(info["obs"])
        mask = [False] * self.learner_n_actions
        for i in info["applicable"]:
            mask[i] = True
        self.learner.record(info["obs"], mask, int(info["action"]), float(info["logprob"]), float(info["value"]),
                            float(transition.reward))

    def _reseed(self, iteration: int) -> None:
        """Randomness per iteration from (seed, iteration): a resumed campaign samples what an unbroken one would."""
        self.learner.generator.manual_seed(self.seed * 1_000_003 + iteration)

    @property
    def learner_n_actions(self) -> int:
        return self.features.n_actions

    def state_dict(self) -> dict[str, Any]:
        return {"learner": self.learner.state_dict(), "feature_dim": self.features.dim,
                "n_actions": self.features.n_actions}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["feature_dim"] != self.features.dim or state["n_actions"] != self.features.n_actions:
            raise ValueError("the agent checkpoint was made for another train.py or action space")
        self.learner.load_state_dict(state["learner"])
