"""PPO core: GAE by hand, the clipped loss, the masked exploration policy, exact resume, and learning on toys."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from autoresearch_rl.agent.ppo import (
    ActorCritic,
    ActResult,
    PPOConfig,
    PPOLearner,
    RunningMeanStd,
    gae,
    masked_policy,
    ppo_losses,
)

torch.set_num_threads(1)


# ---- GAE ------------------------------------------------------------------------------------------


def test_gae_matches_hand_computation_with_bootstrap() -> None:
    rewards = torch.tensor([1.0, 0.0, 2.0])
    values = torch.tensor([0.5, 1.0, 0.2])
    gamma, lam, next_value = 0.9, 0.8, 0.8
    # delta_t = r_t + gamma * V_{t+1} - V_t, with V_3 = next_value (the bootstrap; no terminal states)
    d2 = 2.0 + 0.9 * 0.8 - 0.2  # 2.52
    d1 = 0.0 + 0.9 * 0.2 - 1.0  # -0.82
    d0 = 1.0 + 0.9 * 1.0 - 0.5  # 1.4
    # A_t = delta_t + gamma * lam * A_{t+1}
    a2 = d2  # 2.52
    a1 = d1 + 0.72 * a2  # 0.9944
    a0 = d0 + 0.72 * a1  # 2.115968
    advantages, returns = gae(rewards, values, next_value, gamma, lam)
    torch.testing.assert_close(advantages, torch.tensor([a0, a1, a2]))
    torch.testing.assert_close(advantages, torch.tensor([2.115968, 0.9944, 2.52]))
    torch.testing.assert_close(returns, advantages + values)


def test_gae_with_lambda_one_gives_bootstrapped_discounted_returns() -> None:
    rewards = torch.tensor([1.0, 0.0, 2.0])
    values = torch.tensor([0.5, 1.0, 0.2])
    _, returns = gae(rewards, values, torch.tensor(0.8), gamma=0.9, lam=1.0)
    r2 = 2.0 + 0.9 * 0.8  # 2.72
    r1 = 0.0 + 0.9 * r2  # 2.448
    r0 = 1.0 + 0.9 * r1  # 3.2032
    torch.testing.assert_close(returns, torch.tensor([r0, r1, r2]))


# ---- PPO loss pieces ------------------------------------------------------------------------------


def _losses(
    ratios: list[float], advantages: list[float], **kw: torch.Tensor
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    new_logprob = torch.log(torch.tensor(ratios)).requires_grad_(True)
    out = ppo_losses(
        new_logprob,
        torch.zeros(len(ratios)),
        torch.tensor(advantages),
        kw.get("new_values", torch.zeros(len(ratios))),
        kw.get("returns", torch.zeros(len(ratios))),
        kw.get("entropy", torch.zeros(len(ratios))),
        PPOConfig(clip_coef=0.2),
    )
    return out, new_logprob


def test_clipping_engages_above_and_below_the_range_with_the_sign_of_the_advantage() -> None:
    # (ratio, advantage): A > 0 clips above 1 + clip, A < 0 clips below 1 - clip; the other sides are not clipped.
    ratios = [1.5, 0.5, 0.5, 1.5]
    advantages = [2.0, 2.0, -2.0, -2.0]
    out, new_logprob = _losses(ratios, advantages)
    # per element: -min(r * A, clip(r) * A)
    expected = [-(1.2 * 2.0), -(0.5 * 2.0), -(0.8 * -2.0), -(1.5 * -2.0)]
    torch.testing.assert_close(out["policy_loss"], torch.tensor(sum(expected) / 4))
    out["policy_loss"].backward()
    grad = new_logprob.grad
    assert grad is not None
    assert grad[0] == 0 and grad[2] == 0  # clipped: no incentive to move further
    assert grad[1] < 0 and grad[3] > 0  # unclipped: raise the good action, lower the bad one


def test_value_loss_is_half_mse_and_loss_combines_the_pieces() -> None:
    out, _ = _losses(
        [1.0, 1.0],
        [1.0, -1.0],
        new_values=torch.tensor([1.0, 2.0]),
        returns=torch.tensor([0.0, 4.0]),
        entropy=torch.tensor([0.5, 1.5]),
    )
    torch.testing.assert_close(out["value_loss"], torch.tensor(0.5 * (1.0 + 4.0) / 2))
    torch.testing.assert_close(out["entropy"], torch.tensor(1.0))
    cfg = PPOConfig()
    expected = out["policy_loss"] - cfg.entropy_coef * 1.0 + cfg.value_coef * 1.25
    torch.testing.assert_close(out["loss"], expected)


def test_approx_kl_is_zero_at_ratio_one_and_clipfrac_counts_ratios_outside_the_range() -> None:
    out, _ = _losses([1.0, 1.0, 1.0], [1.0, -1.0, 0.5])
    assert float(out["approx_kl"]) == 0.0
    assert float(out["clipfrac"]) == 0.0
    out, _ = _losses([1.5, 0.5, 1.1, 1.0], [1.0, 1.0, 1.0, 1.0])
    assert float(out["clipfrac"]) == pytest.approx(0.5)
    expected_kl = sum((r - 1) - math.log(r) for r in [1.5, 0.5, 1.1, 1.0]) / 4
    assert float(out["approx_kl"]) == pytest.approx(expected_kl, rel=1e-5)


# ---- masked policy --------------------------------------------------------------------------------


def test_masked_actions_get_exactly_zero_probability_and_are_never_sampled() -> None:
    g = torch.Generator().manual_seed(0)
    logits = 10.0 * torch.randn(64, 120, generator=g)  # (B, A), sharp logits
    mask = torch.rand(64, 120, generator=g) < 0.3
    mask[:, 7] = True  # at least one applicable action per row
    dist = masked_policy(logits, mask, epsilon=0.05)
    assert torch.all(dist.probs[~mask] == 0)
    torch.testing.assert_close(dist.probs.sum(-1), torch.ones(64))
    samples = torch.multinomial(dist.probs, 200, replacement=True, generator=g)  # (B, 200)
    assert torch.all(torch.gather(mask, 1, samples))
    torch.manual_seed(0)
    assert torch.all(torch.gather(mask, 1, dist.sample((200,)).T))


def test_every_applicable_action_gets_at_least_the_exploration_floor() -> None:
    eps = 0.05
    logits = torch.zeros(3, 10)
    logits[:, 0] = 100.0  # the actor is certain of action 0
    mask = torch.tensor([[True] * 10, [True, False] * 5, [True, True, True] + [False] * 7])
    dist = masked_policy(logits, mask, eps)
    n = mask.sum(-1, keepdim=True).float()
    floor = (eps / n).expand_as(logits)
    assert torch.all(dist.probs[mask] >= floor[mask] * (1 - 1e-6))
    # unbatched works too and agrees with the batched rows
    single = masked_policy(logits[1], mask[1], eps)
    torch.testing.assert_close(single.probs, dist.probs[1])


@pytest.mark.parametrize("epsilon", [0.05, 0.0])
def test_single_applicable_action_is_certain_and_numerically_safe(epsilon: float) -> None:
    logits = (50.0 * torch.randn(2, 6)).requires_grad_(True)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[0, 3] = True
    mask[1, 0] = True
    dist = masked_policy(logits, mask, epsilon)
    torch.testing.assert_close(dist.probs[0, 3], torch.tensor(1.0))
    logprob = dist.log_prob(torch.tensor([3, 0]))
    entropy = dist.entropy()
    assert torch.all(logprob == 0) and torch.all(entropy == 0)
    (logprob.sum() + entropy.sum()).backward()
    assert logits.grad is not None and torch.all(torch.isfinite(logits.grad))


def test_no_applicable_action_is_an_error() -> None:
    with pytest.raises(ValueError, match="no applicable"):
        masked_policy(torch.zeros(2, 4), torch.tensor([[True, False, False, False], [False] * 4]), 0.05)
    learner = PPOLearner(3, 4)
    with pytest.raises(ValueError, match="no action is applicable"):
        learner.act([0.0, 1.0, 2.0], [False] * 4)


def test_act_only_returns_applicable_actions_and_reports_entropy_ratio() -> None:
    learner = PPOLearner(3, 30, seed=1)
    rng = random.Random(0)
    for _ in range(50):
        mask = [rng.random() < 0.2 for _ in range(30)]
        mask[rng.randrange(30)] = True
        out = learner.act([rng.random() for _ in range(3)], mask)
        assert mask[out.action]
        assert 0.0 <= out.entropy_ratio <= 1.0
        assert out.entropy_ratio > 0.99 or sum(mask) == 1  # the initial policy is near uniform
    only = [False] * 30
    only[4] = True
    out = learner.act([0.0, 0.0, 0.0], only)
    assert out == ActResult(action=4, logprob=0.0, value=out.value, entropy=0.0, entropy_ratio=1.0)


def test_record_rejects_a_masked_action() -> None:
    learner = PPOLearner(2, 3)
    with pytest.raises(ValueError, match="not applicable"):
        learner.record([0.0, 0.0], [True, False, True], 1, -1.0, 0.0, 0.0)


def test_config_rejects_an_undiscounted_continuing_task() -> None:
    with pytest.raises(ValueError, match="gamma"):
        PPOConfig(gamma=1.0)


# ---- normaliser and networks ----------------------------------------------------------------------


def test_running_mean_std_matches_batch_statistics_and_clips() -> None:
    g = torch.Generator().manual_seed(0)
    data = 3.0 + 2.0 * torch.randn(300, 4, generator=g, dtype=torch.float64)
    rms = RunningMeanStd(4)
    for chunk in data.split(7):
        rms.update(chunk)
    torch.testing.assert_close(rms.mean, data.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rms.var, data.var(0, unbiased=False), rtol=1e-5, atol=1e-5)
    assert float(rms.normalize(torch.full((1, 4), 1e6)).max()) == 5.0


def test_actor_critic_shapes() -> None:
    net = ActorCritic(5, 12, hidden=16)
    logits, values = net(torch.zeros(3, 5))
    assert logits.shape == (3, 12) and values.shape == (3,)


def test_update_sees_the_normaliser_act_used() -> None:
    """The ratio of the first minibatch is 1: act and update normalised the rollout with the same statistics."""
    cfg = PPOConfig(rollout_steps=8, minibatch_size=8, epochs=1)
    learner = PPOLearner(3, 5, cfg, seed=0)
    rng = random.Random(0)
    for _ in range(2):  # the second rollout runs under non-trivial statistics
        before = learner.obs_rms.state_dict()
        while not learner.ready:
            obs = [rng.gauss(10.0, 3.0), rng.gauss(-2.0, 0.1), rng.random()]
            out = learner.act(obs, [True] * 5)
            learner.record(obs, [True] * 5, out.action, out.logprob, out.value, rng.random())
        after = learner.obs_rms.state_dict()
        assert torch.equal(before["mean"], after["mean"]) and before["count"] == after["count"]
        metrics = learner.update([0.0, 0.0, 0.0])
        assert metrics["losses/approx_kl"] < 1e-6 and metrics["losses/clipfrac"] == 0.0
    assert learner.obs_rms.count > 16 and learner.updates == 2


# ---- exact resume ---------------------------------------------------------------------------------


def _drive(learner: PPOLearner, steps: range, log: list[object]) -> None:
    """A deterministic toy environment: observations and masks depend on the step, rewards on step and action."""
    for t in steps:
        rng = random.Random(t)
        obs = [rng.gauss(0.0, 1.0) for _ in range(4)]
        mask = [rng.random() < 0.5 for _ in range(10)]
        mask[t % 10] = True
        out = learner.act(obs, mask)
        log.append(out)
        learner.record(obs, mask, out.action, out.logprob, out.value, (out.action % 3) / 3 + 0.1 * obs[0])
        if learner.ready:
            log.append(learner.update([float(t), 0.0, 1.0, -1.0]))


def test_state_dict_round_trip_resumes_exactly(tmp_path: Path) -> None:
    cfg = PPOConfig(rollout_steps=6, minibatch_size=4)
    uninterrupted = PPOLearner(4, 10, cfg, seed=3)
    interrupted = PPOLearner(4, 10, cfg, seed=3)
    log_a: list[object] = []
    log_b: list[object] = []
    _drive(uninterrupted, range(0, 15), log_a)
    _drive(interrupted, range(0, 15), log_b)  # two updates done, three transitions in the buffer
    path = tmp_path / "learner.pt"
    torch.save(interrupted.state_dict(), path)
    del interrupted
    resumed = PPOLearner(4, 10, cfg, seed=99)  # a different seed: everything must come from the checkpoint
    resumed.load_state_dict(torch.load(path, weights_only=True))
    _drive(uninterrupted, range(15, 40), log_a)
    _drive(resumed, range(15, 40), log_b)
    assert log_a == log_b
    assert sum(isinstance(x, dict) for x in log_a) == 6
    assert resumed.updates == uninterrupted.updates == 6
    for (name, p), q in zip(uninterrupted.network.state_dict().items(), resumed.network.state_dict().values()):
        assert torch.equal(p, q), name


# ---- learning -------------------------------------------------------------------------------------


def run_bandit(seed: int, steps: int = 400) -> tuple[float, float, float]:
    """4 contexts (one-hot), 20 actions, a random half masked each step but each context's best action
    always applicable; reward 1 for the best action, 0 otherwise, plus noise. Returns the last 100
    steps' average reward, a uniform random policy's expected reward over the same steps, and how often
    the greedy policy then picks the best action on 200 fresh draws."""
    rng = random.Random(1000 + seed)
    n_ctx, n_act = 4, 20
    best = [rng.randrange(n_act) for _ in range(n_ctx)]

    def observe() -> tuple[int, list[float], list[bool]]:
        c = rng.randrange(n_ctx)
        mask = [rng.random() < 0.5 for _ in range(n_act)]
        mask[best[c]] = True
        return c, [float(i == c) for i in range(n_ctx)], mask

    learner = PPOLearner(n_ctx, n_act, seed=seed)
    c, obs, mask = observe()
    rewards: list[float] = []
    random_expected: list[float] = []
    for _ in range(steps):
        out = learner.act(obs, mask)
        reward = float(out.action == best[c]) + rng.gauss(0.0, 0.05)
        rewards.append(reward)
        random_expected.append(1.0 / sum(mask))
        learner.record(obs, mask, out.action, out.logprob, out.value, reward)
        c, obs, mask = observe()
        if learner.ready:
            learner.update(obs)
    greedy_hits = 0
    for _ in range(200):
        c, obs, mask = observe()
        greedy_hits += learner.act(obs, mask, greedy=True).action == best[c]
    return sum(rewards[-100:]) / 100, sum(random_expected[-100:]) / 100, greedy_hits / 200


def run_chain(seed: int, steps: int = 600, policy: str = "ppo") -> list[float]:
    """A chain of 5 states (one-hot); in each state one of 8 actions advances, the others stay (a random
    half of them masked). Reaching past the last state pays 1 and restarts at state 0, so the only
    reward comes after 5 right moves in a row. Returns the rewards (the optimum averages 0.2 a step, a
    uniform random policy about 0.05)."""
    rng = random.Random(2000 + seed)
    n_states, n_act = 5, 8
    right = [rng.randrange(n_act) for _ in range(n_states)]

    def observe(s: int) -> tuple[list[float], list[bool]]:
        mask = [rng.random() < 0.5 for _ in range(n_act)]
        mask[right[s]] = True
        return [float(i == s) for i in range(n_states)], mask

    learner = PPOLearner(n_states, n_act, seed=seed)
    state = 0
    obs, mask = observe(state)
    rewards: list[float] = []
    for _ in range(steps):
        if policy == "ppo":
            out = learner.act(obs, mask)
            action = out.action
        else:
            action = rng.choice([a for a in range(n_act) if mask[a]])
        reward = 0.0
        if action == right[state]:
            state += 1
            if state == n_states:
                reward, state = 1.0, 0
        rewards.append(reward)
        if policy == "ppo":
            learner.record(obs, mask, action, out.logprob, out.value, reward)
        obs, mask = observe(state)
        if policy == "ppo" and learner.ready:
            learner.update(obs)
    return rewards


def test_ppo_learns_a_masked_contextual_bandit() -> None:
    results = [run_bandit(seed) for seed in range(3)]
    for ppo, random_policy, greedy_accuracy in results:
        assert random_policy == pytest.approx(0.1, abs=0.02)
        assert ppo > 3 * random_policy, results
        assert greedy_accuracy > 0.5, results  # a random pick is right 10% of the time


def test_ppo_solves_a_sequential_chain_better_than_random() -> None:
    results = []
    for seed in range(3):
        ppo = sum(run_chain(seed)[-100:]) / 100
        random_policy = sum(run_chain(seed, steps=2000, policy="random")) / 2000
        results.append((ppo, random_policy))
    for ppo, random_policy in results:
        assert ppo > 2 * random_policy, results
    assert sum(ppo for ppo, _ in results) / 3 > 0.14, results  # near the optimum, 0.2

