"""Meta-training the candidate-scoring policy with PPO across thousands of simulated campaigns.

One episode is one campaign of `horizon` runs on a training task (a randomised synthetic landscape or
a public table), through the real in-memory loop and keep rule. The policy picks each proposal; the
reward of a step is the drop of the incumbent's **true** normalised regret until the next step
(privileged information, available in simulation only), so the return of an episode is how much of
the start's regret the campaign removed. gamma = 1 (finite episodes), the clipped PPO objective of
`agent/ppo.py`, value head on campaign features.

Advantages come from paired episodes: each rollout runs `group` campaigns on the same task instance
(same landscape, start and noise stream), differing only in the policy's own sampling, and a step's
advantage is its return-to-go minus the group's mean return-to-go at that step. What a task or a
lucky noise draw gives every episode cancels; what remains is what the choices did. (With `group`
1: GAE, lambda 0.95, on the value head.) Episodes are collected in parallel
processes with the current weights; held-out tasks are only ever evaluated, never trained on.

    arl pretrain --out src/autoresearch_rl/agent/weights/ppo_meta.pt     # the shipped weights
"""

from __future__ import annotations

import io
import json
import multiprocessing
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

TRAIN_TASKS = ("synthetic", "nb201:cifar10", "hpobench:car", "hpobench:phoneme", "hpobench:vehicle",
               "hpobench:australian")
HELD_OUT_TASKS = ("nb201:cifar100", "nb201:imagenet", "hpobench:kc1", "hpobench:segment",
                  "hpobench:blood_transfusion", "hpobench:credit_g")
CLI_FLAGS = ("updates", "episodes_per_update", "group", "horizon", "learning_rate", "entropy_coef", "eval_every",
             "eval_seeds", "workers", "seed")  # what `arl pretrain` takes: the recorded command reproduces the weights
TRAIN_SEED_BASE = 1_000_000  # training episodes use seeds from here: the benchmark's seeds 0..N are unseen


@dataclass(frozen=True)
class PretrainConfig:
    updates: int = 150  # PPO updates
    episodes_per_update: int = 32  # campaigns per rollout
    group: int = 4  # campaigns per task instance in a rollout (paired baseline); 1: GAE on the value head
    horizon: int = 100  # runs per campaign (the episode length)
    learning_rate: float = 5e-3  # at 1e-3 the policy hardly moved (approx KL ~5e-4 per update)
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    entropy_coef: float = 0.003
    value_coef: float = 0.5
    epochs: int = 4
    minibatch: int = 256
    max_grad_norm: float = 0.5
    reward_scale: float = 10.0  # a campaign removes at most 1 unit of normalised regret: scale it up
    eval_every: int = 10  # updates between held-out evaluations (monitoring only; never selects weights)
    eval_seeds: int = 6
    workers: int = 2
    seed: int = 0


def random_synthetic(seed: int):
    """A training landscape from the synthetic family with randomised dimension, noise, interactions, crashes."""
    from autoresearch_rl.landscapes.synthetic import SyntheticConfig, SyntheticSpaceLandscape

    g = np.random.default_rng([0xFA417, seed])
    config = SyntheticConfig(seed=seed, dim=int(g.integers(3, 8)), choices=int(g.integers(3, 9)),
                             noise=float(np.exp(g.uniform(np.log(0.2), np.log(3.0)))),
                             interactions=int(g.integers(0, 7)), interaction_scale=float(g.uniform(0.3, 2.0)),
                             categorical=int(g.integers(0, 3)), fragile=int(g.integers(0, 3)))
    return SyntheticSpaceLandscape(config)


def task_landscape(task: str, seed: int):
    from autoresearch_rl.landscapes.registry import load_landscape

    return random_synthetic(seed) if task == "synthetic" else load_landscape(task, seed)


def regret_before_each_experiment(state, landscape) -> list[float]:
    """Normalised true regret of the incumbent just before each experiment, plus the final one (len n + 1)."""
    from autoresearch_rl.landscapes.base import normalized_regret
    from autoresearch_rl.simulate import incumbent_true_values

    start = landscape.true_value(state.start)
    return [normalized_regret(v, start, landscape.optimum) for v in incumbent_true_values(state, landscape)]


def run_episode(job: dict[str, Any]) -> dict[str, Any]:
    """One campaign with the given weights; its steps with true-regret rewards, and its final regret."""
    import torch

    torch.set_num_threads(1)
    from autoresearch_rl.agent.search.candidate_ppo import CandidatePPO
    from autoresearch_rl.core.loop import Loop
    from autoresearch_rl.core.store import MemoryStore
    from autoresearch_rl.simulate import build_campaign

    landscape = task_landscape(job["task"], job["seed"])
    campaign = build_campaign(landscape, "ppo_prior", job["seed"], job["horizon"], MemoryStore(), task=job["task"])
    agent = CandidatePPO(landscape.space, seed=job.get("policy_seed", job["seed"]), horizon=job["horizon"], learn=False,
                         record_all=True)
    agent.net.load_state_dict(torch.load(io.BytesIO(job["weights"]), weights_only=True))
    campaign.proposer = agent
    state = Loop(campaign).run()
    regret = regret_before_each_experiment(state, landscape)
    steps = agent.recorded  # (exp id, step) in proposal order
    out = []
    for i, (exp, step) in enumerate(steps):
        nxt = steps[i + 1][0] if i + 1 < len(steps) else len(state.experiments)
        out.append({"cands": step.cands, "campaign": step.campaign, "action": step.action, "logprob": step.logprob,
                    "value": step.value, "reward": regret[exp] - regret[nxt], "done": i + 1 == len(steps)})
    return {"task": job["task"], "seed": job["seed"], "group": job.get("group"), "steps": out,
            "final_regret": regret[-1]}


def paired_advantages(returns: list, groups: list) -> list:
    """Each step's return-to-go minus the mean, over its group's episodes that reached that step, of theirs."""
    import torch

    out = []
    for i, ret in enumerate(returns):
        peers = [returns[j] for j in range(len(returns)) if groups[j] == groups[i]]
        n = max(len(p) for p in peers)
        total, count = torch.zeros(n), torch.zeros(n)
        for p in peers:
            total[:len(p)] += p
            count[:len(p)] += 1
        out.append(ret - (total / count)[:len(ret)])
    return out


def _weights_bytes(net) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    return buf.getvalue()


def ppo_update(net, optimizer, episodes: list[dict], config: PretrainConfig, rng: np.random.Generator) -> dict[str, float]:
    """CleanRL's PPO update on a batch of finished episodes (GAE per episode, terminal value 0)."""
    import torch
    from torch import nn

    from autoresearch_rl.agent.ppo import PPOConfig, gae, ppo_losses

    steps = [s for ep in episodes for s in ep["steps"]]
    adv_parts, ret_parts = [], []
    for ep in episodes:
        r = torch.tensor([s["reward"] * config.reward_scale for s in ep["steps"]], dtype=torch.float32)
        v = torch.tensor([s["value"] for s in ep["steps"]], dtype=torch.float32)
        a, ret = gae(r, v, 0.0, config.gamma, config.gae_lambda)
        adv_parts.append(a)
        ret_parts.append(ret)
    if config.group > 1:
        adv_parts = paired_advantages(ret_parts, [ep["group"] for ep in episodes])
    advantages, returns = torch.cat(adv_parts), torch.cat(ret_parts)
    n_max = max(len(s["cands"]) for s in steps)
    width = steps[0]["cands"].shape[1]
    cands = torch.zeros(len(steps), n_max, width)
    mask = torch.zeros(len(steps), n_max, dtype=torch.bool)
    for i, s in enumerate(steps):
        cands[i, :len(s["cands"])] = torch.from_numpy(s["cands"])
        mask[i, :len(s["cands"])] = True
    campaign = torch.from_numpy(np.stack([s["campaign"] for s in steps]))
    actions = torch.tensor([s["action"] for s in steps])
    old_logprob = torch.tensor([s["logprob"] for s in steps], dtype=torch.float32)
    ppo = PPOConfig(clip_coef=config.clip_coef, entropy_coef=config.entropy_coef, value_coef=config.value_coef)
    metrics: dict[str, float] = {}
    for _ in range(config.epochs):
        order = rng.permutation(len(steps))
        for start in range(0, len(steps), config.minibatch):
            idx = torch.from_numpy(order[start:start + config.minibatch])
            logits = net.logits(cands[idx], campaign[idx]).masked_fill(~mask[idx], float("-inf"))
            dist = torch.distributions.Categorical(logits=logits)
            adv = advantages[idx]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            losses = ppo_losses(dist.log_prob(actions[idx]), old_logprob[idx], adv, net.value(campaign[idx]),
                                returns[idx], dist.entropy(), ppo)
            optimizer.zero_grad()
            losses["loss"].backward()
            nn.utils.clip_grad_norm_(net.parameters(), config.max_grad_norm)
            optimizer.step()
            metrics = {k: float(v.detach()) for k, v in losses.items()}
    return metrics


def pretrain(config: PretrainConfig, out: Path, progress: bool = True, tasks: tuple[str, ...] = TRAIN_TASKS,
             held_out: tuple[str, ...] = HELD_OUT_TASKS, net: Any = None) -> dict[str, Any]:
    """Train (from the hand-set prior, or `net`); write the weights, a JSON record beside them and a learning-curve PNG."""
    import contextlib

    import torch
    from rich.progress import Progress

    from autoresearch_rl.agent.search.candidate_ppo import CandidateScorer

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = net or CandidateScorer()
    optimizer = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    curve: list[dict[str, Any]] = []
    started = time.perf_counter()
    episode_counter = 0
    pool_cm = (multiprocessing.get_context("spawn").Pool(config.workers) if config.workers > 1
               else contextlib.nullcontext(None))
    with pool_cm as pool, Progress(disable=not progress) as bar:
        run_all = (lambda jobs: pool.map(run_episode, jobs)) if pool is not None else (lambda jobs: list(map(run_episode, jobs)))
        task_bar = bar.add_task("meta-training", total=config.updates)
        for update in range(config.updates + 1):
            weights = _weights_bytes(net)
            if update % config.eval_every == 0 or update == config.updates:
                jobs = [{"task": t, "seed": s, "horizon": config.horizon, "weights": weights}
                        for t in held_out for s in range(config.eval_seeds)]
                held = run_all(jobs)
                row = {"update": update, "episodes": episode_counter, "seconds": round(time.perf_counter() - started, 1),
                       "held_out_regret": {t: float(np.median([h["final_regret"] for h in held if h["task"] == t]))
                                           for t in held_out}}
                row["held_out_median"] = float(np.median(list(row["held_out_regret"].values())))
                curve.append(row)
                if not bar.console.is_terminal:
                    print(json.dumps(row), flush=True)
            if update == config.updates:
                break
            jobs = []
            for instance in range(max(1, config.episodes_per_update // config.group)):
                task = tasks[int(rng.integers(len(tasks)))]
                seed = TRAIN_SEED_BASE + episode_counter
                for member in range(config.group):  # the same task instance; the policy samples differently
                    jobs.append({"task": task, "seed": seed, "policy_seed": seed * 64 + member, "group": instance,
                                 "horizon": config.horizon, "weights": weights})
                    episode_counter += 1
            episodes = run_all(jobs)
            metrics = ppo_update(net, optimizer, episodes, config, rng)
            curve.append({"update": update + 1, "return": float(np.mean([sum(s["reward"] for s in ep["steps"]) for ep in episodes])),
                          "final_regret_train": float(np.median([ep["final_regret"] for ep in episodes])),
                          **{f"losses/{k}": round(v, 5) for k, v in metrics.items()}})
            bar.update(task_bar, advance=1, description=f"meta-training (return {curve[-1]['return']:.3f})")
            if not bar.console.is_terminal and (update + 1) % max(1, config.eval_every // 2) == 0:
                print(json.dumps(curve[-1]), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out)
    record = {"command": "arl pretrain " + " ".join(f"--{k.replace('_', '-')} {getattr(config, k)}" for k in CLI_FLAGS),
              "config": asdict(config), "git_sha": _git_sha(), "git_dirty": _git_dirty(), "train_tasks": list(tasks),
              "train_seeds": f"{TRAIN_SEED_BASE}..{TRAIN_SEED_BASE + episode_counter - 1}",
              "held_out_tasks": list(held_out), "episodes": episode_counter,
              "seconds": round(time.perf_counter() - started, 1), "machine": f"{platform.machine()}, {platform.platform()}",
              "curve": curve}
    out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    plot_curve(curve, out.with_suffix(".png"), held_out)
    return record


def plot_curve(curve: list[dict[str, Any]], path: Path, held_out: tuple[str, ...] = HELD_OUT_TASKS) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in curve if "return" in r]
    held = [r for r in curve if "held_out_median" in r]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4), dpi=110)
    if train:
        xs = [r["update"] for r in train]
        ys = np.array([r["return"] for r in train])
        a.plot(xs, ys, alpha=0.3, color="C0")
        k = max(1, len(ys) // 20)
        a.plot(xs[k - 1:], np.convolve(ys, np.ones(k) / k, mode="valid"), color="C0", label=f"mean return (moving avg {k})")
        a.set_xlabel("PPO update")
        a.set_ylabel("episode return (regret removed)")
        a.set_title("training tasks")
        a.legend()
        a.grid(alpha=0.3)
    for t in held_out:
        b.plot([r["update"] for r in held], [r["held_out_regret"][t] for r in held], label=t, alpha=0.7)
    b.plot([r["update"] for r in held], [r["held_out_median"] for r in held], color="k", linewidth=2, label="median")
    b.set_xlabel("PPO update")
    b.set_ylabel("median normalised true regret @horizon")
    b.set_title("held-out tasks (never trained on)")
    b.legend(fontsize=7)
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _git_dirty() -> bool | None:
    """Whether the training code differed from `git_sha` (then the commit that adds the weights holds it)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).parent).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return bool(out.strip())


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
