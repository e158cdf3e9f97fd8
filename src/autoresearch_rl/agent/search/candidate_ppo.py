"""Our PPO agent for discrete spaces: a policy that scores candidates by task-agnostic features, trained online.

logit(candidate) = PRIOR . features + MLP([features, campaign features]); value = MLP(campaign features).
The prior is hand-set (prefer untried edits, predicted and measured gains, knobs that paid off; avoid
crash-prone values): at the start the agent is a sensible local searcher. PPO (CleanRL's clipped
objective and GAE from `agent/ppo.py`) updates the network every `rollout` decisions on the rewards
the keep rule gives (improvement over the incumbent in sigma, clipped). The loop calls `update`
when `ready()`; proposing never trains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autoresearch_rl.agent.ppo import PPOConfig, gae, ppo_losses
from autoresearch_rl.agent.search.candidate_features import CAMPAIGN_FEATURES, CANDIDATE_FEATURES, featurise
from autoresearch_rl.agent.search.neighbourhood import step_rng
from autoresearch_rl.core.events import Proposed
from autoresearch_rl.core.proposer import Proposal
from autoresearch_rl.core.space import Config, DiscreteSpace
from autoresearch_rl.core.state import CampaignState, Experiment

Features = tuple[list[tuple[tuple[int, ...], str]], np.ndarray, np.ndarray]  # candidates, their rows, the campaign's

# untried, measured, measured_gain, predicted_gain, predicted_sd, p_clear, ei, knob_tries, knob_best, crash_rate,
# remeasure, challenger, move, distance, bias, tpe_rank, tpe_sample: a local searcher that tries untried edits the
# surrogate likes, avoids crashes, rarely jumps far, and leans towards where TPE sees the good configurations
MAX_REFUSED = 20  # candidates refused by `admissible` per proposal; then the last draw stands
PRIOR = (3.0, 0.0, 3.0, 3.0, 0.0, 6.0, 6.0, 0.0, 1.5, -9.0, -9.0, 0.0, 0.0, -3.0, 0.0, 9.0, 3.0)


class CandidateScorer(nn.Module):
    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.prior = nn.Parameter(torch.tensor(PRIOR, dtype=torch.float32))
        self.actor = nn.Sequential(nn.Linear(CANDIDATE_FEATURES + CAMPAIGN_FEATURES, hidden), nn.Tanh(),
                                   nn.Linear(hidden, 1))
        self.critic = nn.Sequential(nn.Linear(CAMPAIGN_FEATURES, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        nn.init.normal_(self.actor[2].weight, std=0.01)
        nn.init.zeros_(self.actor[2].bias)

    def logits(self, cands: torch.Tensor, campaign: torch.Tensor) -> torch.Tensor:
        """(..., n, F) candidates and (..., C) campaign features -> (..., n) logits."""
        ctx = campaign.unsqueeze(-2).expand(*cands.shape[:-1], campaign.shape[-1])
        return cands @ self.prior + self.actor(torch.cat([cands, ctx], -1)).squeeze(-1)

    def value(self, campaign: torch.Tensor) -> torch.Tensor:
        return self.critic(campaign).squeeze(-1)


@dataclass
class _Step:
    cands: np.ndarray
    campaign: np.ndarray
    action: int
    logprob: float
    value: float
    reward: float | None = None


class CandidatePPO:
    name = "ppo"

    def __init__(self, space: DiscreteSpace, seed: int = 0, horizon: int = 200, config: PPOConfig | None = None,
                 rollout: int = 32, learn: bool = True, record_all: bool = False, fresh_only: bool = False,
                 admissible: Callable[[Config, Mapping[Config, int]], bool] | None = None) -> None:
        self.space, self.seed, self.horizon, self.rollout, self.learn = space, seed, horizon, rollout, learn
        self.recorded: list[tuple[int, _Step]] = []  # record_all: every (exp id, step), for meta-training
        self.record_all = record_all
        self.fresh_only = fresh_only  # offer only never-measured configurations (featurise)
        self.admissible = admissible  # (config, measured) -> would it run as new code (a train.py's `Runnable`)
        self.config = config or PPOConfig(learning_rate=3e-4, gamma=0.9, gae_lambda=0.95)
        torch.manual_seed(seed)
        self.net = CandidateScorer()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.config.learning_rate)
        self.version = 0
        self._steps: list[_Step] = []
        self._by_exp: dict[int, _Step] = {}

    def load_weights(self, path: Path) -> None:
        """The meta-trained network (`arl pretrain`); a missing or foreign file is a one-line error."""
        from autoresearch_rl.errors import UserError

        if not Path(path).is_file():
            raise UserError(f"no meta-trained weights at {path}; run `arl pretrain --out {path}` or choose --agent ppo_prior")
        try:
            self.net.load_state_dict(torch.load(path, weights_only=True))
        except (RuntimeError, KeyError, ValueError) as exc:
            raise UserError(f"{path} does not hold weights of this policy ({str(exc).splitlines()[0]}); "
                            "re-run `arl pretrain`") from exc

    def _score(self, state: CampaignState, features: Features | None = None
               ) -> tuple[list[tuple[tuple[int, ...], str]], np.ndarray, np.ndarray, np.ndarray, float]:
        """The candidates, their features, the campaign's, the policy's probabilities and the value estimate."""
        cands, rows, campaign = features or self.features(state)
        with torch.no_grad():
            logits = self.net.logits(torch.from_numpy(rows), torch.from_numpy(campaign))
            probs = torch.softmax(logits, -1).double().numpy()
            value = float(self.net.value(torch.from_numpy(campaign)))
        return cands, rows, campaign, probs / probs.sum(), value

    def propose(self, state: CampaignState) -> Proposal:
        cands, rows, campaign, probs, value = self._score(state)
        rng = step_rng(self.seed, state.iterations, self.name)
        action = int(rng.choice(len(cands), p=probs))
        refused: list[int] = []
        while (self.admissible is not None and cands[action][1] == "edit" and len(refused) < MAX_REFUSED
               and not self.admissible(cands[action][0], state.measurement_counts)):
            refused.append(action)  # it would not run as new code: drawn again among the others
            left = probs.copy()
            left[refused] = 0.0
            if left.sum() <= 0:
                break
            action = int(rng.choice(len(cands), p=left / left.sum()))
        step = self._step(rows, campaign, probs, value, action, refused)
        self._by_exp[len(state.experiments)] = step
        if self.record_all:
            self.recorded.append((len(state.experiments), step))
        config, kind = cands[action]
        info = {"action": action, "candidate": kind, "logprob": round(step.logprob, 6)}
        if refused:
            info["refused"] = refused
        return Proposal(config, "remeasure" if kind == "remeasure" else "edit", info=info)

    @staticmethod
    def _step(rows: np.ndarray, campaign: np.ndarray, probs: np.ndarray, value: float, action: int,
              refused: list[int]) -> _Step:
        """The step PPO learns from: the action among the candidates that were not refused, and its
        probability renormalised over them (the distribution it was really drawn from)."""
        if not refused:
            return _Step(rows, campaign, action, float(np.log(max(probs[action], 1e-12))), value)
        out = set(refused) - {action}
        keep = [i for i in range(len(rows)) if i not in out]
        left = probs[keep].sum()
        return _Step(rows[keep], campaign, keep.index(action), float(np.log(max(probs[action] / left, 1e-12))), value)

    def replay_proposal(self, state: CampaignState, proposed: Proposed) -> None:
        """One of this policy's proposals read back from the log (a resumed loop): its step, scored by the policy
        as it is at that point of the replay, the one that proposed it."""
        action = proposed.info.get("action")
        if action is None:
            return  # the loop's own confirmations and re-measurements, or the calibration
        cands, rows, campaign, probs, value = self._score(state)
        step = self._step(rows, campaign, probs, value, int(action), list(proposed.info.get("refused", ())))
        self._by_exp[proposed.exp] = step
        if self.record_all:
            self.recorded.append((proposed.exp, step))

    def features(self, state: CampaignState) -> Features:
        """What the policy is offered in `state`: a function of the state and the horizon, not of the weights."""
        return featurise(self.space, state, self.horizon, self.fresh_only)

    def record(self, state: CampaignState, config: tuple[int, ...], features: Features | None = None) -> bool:
        """Take `config` as this policy's action in `state` (a step replayed from a ledger), if it is one of the
        candidates the policy is offered there (`features`: `self.features(state)`, when known); the next
        `observe` of that experiment gives its reward."""
        cands, rows, campaign, probs, value = self._score(state, features)
        action = next((i for i, (c, kind) in enumerate(cands) if c == config and kind == "edit"), None)
        if action is None:
            return False
        self._by_exp[len(state.experiments)] = _Step(rows, campaign, action, float(np.log(max(probs[action], 1e-12))),
                                                     value)
        return True

    def observe(self, state: CampaignState, experiment: Experiment) -> None:
        step = self._by_exp.pop(experiment.exp, None)
        if step is None or experiment.reward is None:
            return  # not proposed by this policy (a replay, or a confirmation)
        step.reward = float(experiment.reward) / 5.0
        self._steps.append(step)

    def ready(self) -> bool:
        return self.learn and len(self._steps) >= self.rollout

    def update(self, state: CampaignState) -> dict[str, float]:
        steps, self._steps = self._steps, []
        n_max = max(len(s.cands) for s in steps)
        cands = torch.zeros(len(steps), n_max, CANDIDATE_FEATURES)
        mask = torch.zeros(len(steps), n_max, dtype=torch.bool)
        for i, s in enumerate(steps):
            cands[i, :len(s.cands)] = torch.from_numpy(s.cands)
            mask[i, :len(s.cands)] = True
        campaign = torch.from_numpy(np.stack([s.campaign for s in steps]))
        actions = torch.tensor([s.action for s in steps])
        old_logprob = torch.tensor([s.logprob for s in steps])
        values = torch.tensor([s.value for s in steps])
        rewards = torch.tensor([s.reward or 0.0 for s in steps])
        _, _, next_campaign = featurise(self.space, state, self.horizon, self.fresh_only)
        with torch.no_grad():
            next_value = self.net.value(torch.from_numpy(next_campaign))
        advantages, returns = gae(rewards, values, next_value, self.config.gamma, self.config.gae_lambda)
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        metrics: dict[str, float] = {}
        for _ in range(self.config.epochs):
            logits = self.net.logits(cands, campaign).masked_fill(~mask, float("-inf"))
            dist = torch.distributions.Categorical(logits=logits)
            losses = ppo_losses(dist.log_prob(actions), old_logprob, advantages, self.net.value(campaign), returns,
                                dist.entropy(), self.config)
            self.optimizer.zero_grad()
            losses["loss"].backward()
            nn.utils.clip_grad_norm_(self.net.parameters(), self.config.max_grad_norm)
            self.optimizer.step()
            metrics = {k: round(float(v.detach()), 6) for k, v in losses.items()}
        self.version += 1
        return metrics
