"""PPO core of the meta-learner: GAE, a masked exploration policy, the clipped loss and a small learner.

Read it against the PPO paper (Schulman et al. 2017) and CleanRL's ppo.py: rollout storage, `gae`,
`ppo_losses` (clipped surrogate, value loss, entropy bonus, approx-KL, clip fraction) and explained
variance, with CleanRL's metric names. What differs is the regime: one step is one experiment
(minutes of training), so rollouts are short, the action space is large and masked (~100-150 edits,
only some applicable at a time), and the task never ends (gamma < 1, values bootstrapped).

    learner = PPOLearner(obs_dim, n_actions)
    out = learner.act(obs, mask)                     # choose an edit
    ...                                              # run the experiment, observe reward and next obs
    learner.record(obs, mask, out.action, out.logprob, out.value, reward)
    if learner.ready:
        metrics = learner.update(next_obs)

Observation normalisation contract (what makes the PPO ratio right and resume exact): `act`
normalises with the current `RunningMeanStd` statistics but never updates them; the buffer keeps
raw observations; `update` normalises the whole rollout with those same statistics, optimises, and
only then folds the rollout's raw observations into the statistics. Every `act` of a rollout and the
update that consumes it therefore see one normaliser, so `old_logprob` and the recomputed log-prob
are of the same inputs, and replaying recorded transitions after a restart reproduces the learner.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Categorical


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters, tuned for few, expensive samples (CleanRL names where they exist)."""

    gamma: float = 0.9
    """discount; < 1 because the task never ends (an effective horizon of ~10 experiments)"""
    gae_lambda: float = 0.9
    """GAE lambda: bias/variance trade-off of the advantage estimate"""
    rollout_steps: int = 8
    """transitions per update: update every few experiments"""
    epochs: int = 4
    """optimisation passes over each rollout"""
    minibatch_size: int = 8
    """transitions per gradient step"""
    learning_rate: float = 1e-3
    """Adam learning rate; at 3e-3, standardised noise of sparse-reward rollouts collapsed toy policies"""
    clip_coef: float = 0.2
    """surrogate clipping: the probability ratio is kept within [1 - clip, 1 + clip]"""
    value_coef: float = 0.5
    """weight of the value loss in the total loss"""
    entropy_coef: float = 0.01
    """weight of the entropy bonus in the total loss"""
    max_grad_norm: float = 0.5
    """global gradient-norm clipping"""
    target_kl: float | None = 0.05
    """stop the epochs of an update once approx-KL exceeds this (None: never stop early)"""
    epsilon: float = 0.05
    """exploration floor: mixing weight of the uniform distribution over applicable actions"""
    hidden: int = 64
    """width of the actor and critic MLPs"""
    normalize_advantages: bool = True
    """standardise the advantages of each rollout"""

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must be in [0, 1) for a continuing task, got {self.gamma}")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")
        for name in ("rollout_steps", "epochs", "minibatch_size", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.target_kl is not None and self.target_kl <= 0:
            raise ValueError(f"target_kl must be positive or None, got {self.target_kl}")


def gae(
    rewards: Tensor, values: Tensor, next_value: float | Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation for a continuing task (no terminal states).

    delta_t = r_t + gamma * V(s_{t+1}) - V(s_t), with V(s_T) = next_value (the bootstrap);
    A_t = delta_t + gamma * lam * A_{t+1}. Returns (advantages, returns), both (T,), where
    returns = advantages + values are the value targets.
    """
    if rewards.dim() != 1 or rewards.shape != values.shape:
        shapes = f"{tuple(rewards.shape)} and {tuple(values.shape)}"
        raise ValueError(f"rewards and values must be 1-D of equal length, got {shapes}")
    rewards, values = rewards.detach(), values.detach()
    next_v = torch.as_tensor(next_value, dtype=values.dtype).detach().reshape(())
    advantages = torch.zeros_like(values)
    last = torch.zeros((), dtype=values.dtype)
    for t in reversed(range(rewards.shape[0])):
        v_next = next_v if t == rewards.shape[0] - 1 else values[t + 1]
        delta = rewards[t] + gamma * v_next - values[t]
        last = delta + gamma * lam * last
        advantages[t] = last
    return advantages, advantages + values


def masked_policy(logits: Tensor, mask: Tensor, epsilon: float) -> Categorical:
    """The behaviour (and trained) policy: (1 - eps) * softmax over applicable actions + eps * uniform over them.

    The uniform floor keeps every applicable edit tried now and then however confident the actor
    gets, and bounds the PPO ratio of rarely chosen actions. Masked actions get logit -inf, hence
    probability exactly 0, so they are never sampled. Works for (A,) or (B, A); every row of `mask`
    needs at least one True. The -inf is put in with `where` after the log, never taken as log(0),
    so gradients stay finite (also with a single applicable action, or epsilon = 0).
    """
    mask = mask.to(torch.bool)
    if mask.shape != logits.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match logits shape {tuple(logits.shape)}")
    n_applicable = mask.sum(-1, keepdim=True)  # (..., 1)
    if bool((n_applicable == 0).any()):
        raise ValueError("masked_policy: a mask has no applicable action")
    greedy_part = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)  # (..., A), 0 where masked
    uniform = mask.to(logits.dtype) / n_applicable.to(logits.dtype)  # (..., A)
    probs = (1.0 - epsilon) * greedy_part + epsilon * uniform  # (..., A)
    log_probs = torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
    return Categorical(logits=torch.where(mask, log_probs, float("-inf")))


def ppo_losses(
    new_logprob: Tensor,
    old_logprob: Tensor,
    advantages: Tensor,
    new_values: Tensor,
    returns: Tensor,
    entropy: Tensor,
    config: PPOConfig,
) -> dict[str, Tensor]:
    """The PPO objective of one minibatch, as a loss to minimise, plus its diagnostics.

    policy_loss is the negated clipped surrogate, mean(max(-A * r, -A * clip(r, 1 - c, 1 + c))), a
    pessimistic bound that removes the incentive to move the ratio r past the clip range;
    value_loss = 0.5 * MSE(V, returns); loss = policy_loss - entropy_coef * entropy + value_coef *
    value_loss. approx_kl = mean((r - 1) - log r) (unbiased, non-negative, Schulman's k3) and clipfrac
    (share of ratios outside the clip range) are detached diagnostics.
    """
    logratio = new_logprob - old_logprob
    ratio = logratio.exp()
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * torch.clamp(ratio, 1.0 - config.clip_coef, 1.0 + config.clip_coef)
    policy_loss = torch.max(pg_loss1, pg_loss2).mean()
    value_loss = 0.5 * ((new_values - returns) ** 2).mean()
    entropy_mean = entropy.mean()
    loss = policy_loss - config.entropy_coef * entropy_mean + config.value_coef * value_loss
    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - logratio).mean()
        clipfrac = ((ratio - 1.0).abs() > config.clip_coef).float().mean()
    return {
        "loss": loss,
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy_mean,
        "approx_kl": approx_kl,
        "clipfrac": clipfrac,
    }


class RunningMeanStd:
    """Per-feature running mean and variance of observations (parallel Welford update, float64).

    Observation features come on very different scales (a loss, a width, a learning rate); the
    networks see them standardised and clipped to [-5, 5].
    """

    def __init__(self, dim: int, epsilon: float = 1e-4) -> None:
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.var = torch.ones(dim, dtype=torch.float64)
        self.count = epsilon  # a tiny prior weight: the first batch dominates without dividing by 0

    def update(self, x: Tensor) -> None:
        """Fold a batch x (N, D) into the statistics (Chan et al. parallel algorithm)."""
        x = x.detach().to(torch.float64).reshape(-1, self.mean.shape[0])
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        batch_count = x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / total
        self.mean = self.mean + delta * batch_count / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x: Tensor) -> Tensor:
        """(x - mean) / std, clipped to [-5, 5], in x's dtype; does not update the statistics."""
        y = (x.to(torch.float64) - self.mean) / torch.sqrt(self.var + 1e-8)
        return y.clamp(-5.0, 5.0).to(x.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": float(self.count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = state["mean"].clone().to(torch.float64)
        self.var = state["var"].clone().to(torch.float64)
        self.count = float(state["count"])


def layer_init(layer: nn.Linear, std: float, generator: torch.Generator | None = None) -> nn.Linear:
    """Orthogonal weights, zero bias (CleanRL); std 0.01 on the actor head makes the first policy near uniform."""
    nn.init.orthogonal_(layer.weight, std, generator=generator)
    nn.init.constant_(layer.bias, 0.0)
    return layer


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs (two tanh hidden layers each): no shared trunk, so the value loss
    cannot disturb the policy's features, which matters when every sample is precious."""

    def __init__(
        self, obs_dim: int, n_actions: int, hidden: int = 64, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        g = generator
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden), math.sqrt(2), g),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden), math.sqrt(2), g),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), 1.0, g),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden), math.sqrt(2), g),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden), math.sqrt(2), g),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, n_actions), 0.01, g),
        )

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """obs (B, obs_dim), already normalised -> logits (B, n_actions), values (B,)."""
        return self.actor(obs), self.critic(obs).squeeze(-1)


class ActionScoringActorCritic(nn.Module):
    """An actor that scores every action with one shared MLP over (state embedding, that action's features).

    obs = [global state (G) | action features (A x F), flattened]. logit(a) = f(h(state), x_a) + b_a: what
    is learned about one action ("edits that helped before help again", "an edit already tried on this
    incumbent rarely helps") transfers to all of them at once, which is what a learner with a few hundred
    samples and ~100 actions needs; the per-action bias b_a keeps the flat network's ability to learn
    action identities. The critic reads the global state only.
    """

    def __init__(self, global_dim: int, n_actions: int, action_dim: int, hidden: int = 64,
                 generator: torch.Generator | None = None, prior: Sequence[float] | None = None) -> None:
        super().__init__()
        g = generator
        self.global_dim, self.n_actions, self.action_dim = global_dim, n_actions, action_dim
        self.critic = nn.Sequential(
            layer_init(nn.Linear(global_dim, hidden), math.sqrt(2), g),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden), math.sqrt(2), g),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), 1.0, g),
        )
        self.state_encoder = nn.Sequential(layer_init(nn.Linear(global_dim, hidden), math.sqrt(2), g), nn.Tanh())
        self.scorer = nn.Sequential(
            layer_init(nn.Linear(hidden + action_dim, hidden), math.sqrt(2), g),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), 0.01, g),
        )
        self.action_bias = nn.Parameter(torch.zeros(n_actions))
        # A learnable linear term on the action features, initialised to a prior (e.g. "prefer edits not yet
        # tried on this incumbent, and edits that paid off before"): PPO starts from it and may unlearn it.
        init = torch.zeros(action_dim) if prior is None else torch.as_tensor(prior, dtype=torch.float32)
        if init.shape != (action_dim,):
            raise ValueError(f"prior must have {action_dim} entries")
        self.prior = nn.Parameter(init.clone())

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """obs (B, G + A*F) -> logits (B, A), values (B,)."""
        state = obs[:, : self.global_dim]  # (B, G)
        actions = obs[:, self.global_dim :].reshape(obs.shape[0], self.n_actions, self.action_dim)  # (B, A, F)
        h = self.state_encoder(state).unsqueeze(1).expand(-1, self.n_actions, -1)  # (B, A, H)
        logits = self.scorer(torch.cat([h, actions], dim=-1)).squeeze(-1) + self.action_bias  # (B, A)
        logits = logits + actions @ self.prior  # (B, A)
        return logits, self.critic(state).squeeze(-1)


@dataclass(frozen=True)
class ActResult:
    """One decision of the learner, with what `record` needs and what a dashboard shows."""

    action: int
    logprob: float  # log prob under the mixture policy actually sampled from
    value: float  # V(obs) from the critic
    entropy: float  # entropy of the mixture policy over applicable actions (nats)
    entropy_ratio: float  # entropy / log(n_applicable), in [0, 1]; 1.0 when n_applicable == 1


_BUFFER_KEYS = ("obs", "mask", "action", "logprob", "value", "reward")


class PPOLearner:
    """A PPO learner driven one transition at a time (ask/tell), so it never cares where an experiment ran.

    All randomness (network init, sampling, minibatch shuffles) comes from one torch.Generator owned
    by the learner and saved in `state_dict`, so a campaign resumed from a checkpoint behaves exactly
    as if it had never stopped. See the module docstring for the observation normalisation contract.
    """

    def __init__(self, obs_dim: int, n_actions: int, config: PPOConfig = PPOConfig(), seed: int = 0,
                 action_features: int = 0, action_prior: Sequence[float] | None = None) -> None:
        """`action_features` > 0: the last n_actions * action_features entries of obs are per-action features,
        scored by `ActionScoringActorCritic` and left unnormalised (they are bounded by construction, and a
        per-slot standardisation would erase features that are constant for an action, such as its step size)."""
        self.obs_dim = obs_dim
        self.n_actions = n_actions
        self.config = config
        self.action_features = action_features
        self.generator = torch.Generator().manual_seed(seed)
        self.global_dim = obs_dim - n_actions * action_features
        if self.global_dim <= 0:
            raise ValueError("obs_dim must exceed n_actions * action_features")
        if action_features:
            self.network: nn.Module = ActionScoringActorCritic(self.global_dim, n_actions, action_features,
                                                               config.hidden, generator=self.generator,
                                                               prior=action_prior)
        else:
            self.network = ActorCritic(obs_dim, n_actions, config.hidden, generator=self.generator)
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=config.learning_rate, eps=1e-5)
        self.obs_rms = RunningMeanStd(self.global_dim)
        self.updates = 0
        self._buffer: dict[str, list[Any]] = {k: [] for k in _BUFFER_KEYS}

    # ---- acting and storage -------------------------------------------------------------------

    def _normalize(self, x: Tensor) -> Tensor:
        """Standardise the global part of obs (..., D) with the running statistics; action features pass through."""
        g = self.global_dim
        return torch.cat([self.obs_rms.normalize(x[..., :g]), x[..., g:]], dim=-1)

    def _obs_tensor(self, obs: Sequence[float] | Tensor) -> Tensor:
        x = torch.as_tensor(obs, dtype=torch.float32).detach().clone()
        if x.shape != (self.obs_dim,):
            raise ValueError(f"obs must have shape ({self.obs_dim},), got {tuple(x.shape)}")
        return x

    def _mask_tensor(self, mask: Sequence[bool] | Tensor) -> Tensor:
        m = torch.as_tensor(mask, dtype=torch.bool).detach().clone()
        if m.shape != (self.n_actions,):
            raise ValueError(f"mask must have shape ({self.n_actions},), got {tuple(m.shape)}")
        if not bool(m.any()):
            raise ValueError("no action is applicable: the mask is all False")
        return m

    @torch.no_grad()
    def act(self, obs: Sequence[float] | Tensor, mask: Sequence[bool] | Tensor, greedy: bool = False) -> ActResult:
        """Sample an applicable action (or take the most probable one if greedy) for a raw observation."""
        x = self._obs_tensor(obs)
        m = self._mask_tensor(mask)
        logits, value = self.network(self._normalize(x).unsqueeze(0))  # (1, A), (1,)
        dist = masked_policy(logits[0], m, self.config.epsilon)
        if greedy:
            action = int(torch.argmax(dist.probs))
        else:
            action = int(torch.multinomial(dist.probs, 1, generator=self.generator))
        entropy = float(dist.entropy())
        n_applicable = int(m.sum())
        ratio = 1.0 if n_applicable == 1 else min(1.0, max(0.0, entropy / math.log(n_applicable)))
        return ActResult(
            action=action,
            logprob=float(dist.log_prob(torch.tensor(action))),
            value=float(value[0]),
            entropy=entropy,
            entropy_ratio=ratio,
        )

    def record(
        self,
        obs: Sequence[float] | Tensor,
        mask: Sequence[bool] | Tensor,
        action: int,
        logprob: float,
        value: float,
        reward: float,
    ) -> None:
        """Append one completed transition (the raw obs given to `act`) to the rollout buffer."""
        m = self._mask_tensor(mask)
        if not 0 <= action < self.n_actions or not bool(m[action]):
            raise ValueError(f"action {action} is not applicable under the given mask")
        self._buffer["obs"].append(self._obs_tensor(obs))
        self._buffer["mask"].append(m)
        self._buffer["action"].append(int(action))
        self._buffer["logprob"].append(float(logprob))
        self._buffer["value"].append(float(value))
        self._buffer["reward"].append(float(reward))

    @property
    def ready(self) -> bool:
        """True once the buffer holds a full rollout."""
        return len(self._buffer["action"]) >= self.config.rollout_steps

    # ---- learning ------------------------------------------------------------------------------

    def update(self, next_obs: Sequence[float] | Tensor) -> dict[str, float]:
        """One PPO update on the buffered rollout (full or not), bootstrapped with V(next_obs); clears the buffer.

        The rollout and next_obs are normalised with the statistics `act` used; the normaliser takes
        in the rollout only after optimising (see the module docstring). Metrics follow CleanRL: the
        losses and approx_kl of the last minibatch, clipfrac averaged over all minibatches, and
        explained variance of the rollout's values (NaN when the returns are constant).
        """
        cfg = self.config
        n = len(self._buffer["action"])
        if n == 0:
            raise ValueError("update() called with an empty rollout buffer")
        b_obs_raw = torch.stack(self._buffer["obs"])  # (T, D)
        b_obs = self._normalize(b_obs_raw)  # same statistics `act` used for this rollout
        b_masks = torch.stack(self._buffer["mask"])  # (T, A)
        b_actions = torch.tensor(self._buffer["action"], dtype=torch.long)  # (T,)
        b_logprobs = torch.tensor(self._buffer["logprob"], dtype=torch.float32)  # (T,)
        b_values = torch.tensor(self._buffer["value"], dtype=torch.float32)  # (T,)
        rewards = torch.tensor(self._buffer["reward"], dtype=torch.float32)  # (T,)

        with torch.no_grad():
            next_x = self._normalize(self._obs_tensor(next_obs)).unsqueeze(0)
            next_value = self.network(next_x)[1][0]
        b_advantages, b_returns = gae(rewards, b_values, next_value, cfg.gamma, cfg.gae_lambda)
        if cfg.normalize_advantages and n > 1:
            # Over the whole rollout, not per minibatch as in CleanRL: minibatches here are a handful of samples.
            b_advantages = (b_advantages - b_advantages.mean()) / (b_advantages.std() + 1e-8)

        clipfracs: list[float] = []
        epochs_run = 0
        out: dict[str, Tensor] = {}
        for _ in range(cfg.epochs):
            epochs_run += 1
            b_inds = torch.randperm(n, generator=self.generator)
            for start in range(0, n, cfg.minibatch_size):
                mb = b_inds[start : start + cfg.minibatch_size]
                logits, new_values = self.network(b_obs[mb])
                dist = masked_policy(logits, b_masks[mb], cfg.epsilon)
                out = ppo_losses(
                    dist.log_prob(b_actions[mb]),
                    b_logprobs[mb],
                    b_advantages[mb],
                    new_values,
                    b_returns[mb],
                    dist.entropy(),
                    cfg,
                )
                clipfracs.append(float(out["clipfrac"]))
                self.optimizer.zero_grad()
                out["loss"].backward()
                nn.utils.clip_grad_norm_(self.network.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
            if cfg.target_kl is not None and float(out["approx_kl"]) > cfg.target_kl:
                break  # the policy moved far enough from the one that collected the data

        # Only now do the statistics move, so the next rollout is acted and trained under one normaliser.
        self.obs_rms.update(b_obs_raw[:, : self.global_dim])
        for buf in self._buffer.values():
            buf.clear()
        self.updates += 1

        var_y = float(b_returns.var(unbiased=False))
        explained_var = math.nan if var_y == 0 else 1.0 - float((b_returns - b_values).var(unbiased=False)) / var_y
        return {
            "losses/policy_loss": float(out["policy_loss"].detach()),
            "losses/value_loss": float(out["value_loss"].detach()),
            "losses/entropy": float(out["entropy"].detach()),
            "losses/approx_kl": float(out["approx_kl"]),
            "losses/clipfrac": sum(clipfracs) / len(clipfracs),
            "losses/explained_variance": explained_var,
            "charts/epochs_run": float(epochs_run),
            "charts/updates": float(self.updates),
        }

    # ---- checkpointing -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """A snapshot (deep copy) of everything needed to resume exactly; safe for torch.load(weights_only=True)."""
        return copy.deepcopy(
            {
                "obs_dim": self.obs_dim,
                "n_actions": self.n_actions,
                "hidden": self.config.hidden,
                "action_features": self.action_features,
                "network": self.network.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "obs_rms": self.obs_rms.state_dict(),
                "generator": self.generator.get_state(),
                "updates": self.updates,
                "buffer": self._buffer,
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict`; the dimensions must match. The learning rate stays this learner's config's."""
        dims = (state["obs_dim"], state["n_actions"], state["hidden"], state.get("action_features", 0))
        mine = (self.obs_dim, self.n_actions, self.config.hidden, self.action_features)
        if dims != mine:
            raise ValueError(f"checkpoint is for (obs_dim, n_actions, hidden, action_features) = {dims}, this learner is {mine}")
        state = copy.deepcopy(state)
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.learning_rate
        self.obs_rms.load_state_dict(state["obs_rms"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])
        self._buffer = {k: list(state["buffer"][k]) for k in _BUFFER_KEYS}
