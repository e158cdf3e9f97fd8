"""Proposers by name, as `arl run --agent NAME` and the benchmarks choose them.

`ppo` is the shipped default, as in the benchmark: the candidate-scoring policy meta-trained across
simulated campaigns, fine-tuned online on this campaign (`agent/space_agent.py`). Its ablations
`ppo_meta_frozen` and `ppo_prior`, and the search baselines `evolution` and `gp_local`, run the same
way. `ppo_edits` is the earlier per-action learner over code edits (hyperparameter and structural
operators of the incumbent), trained within one campaign only and checkpointed by the loop.
"""

from __future__ import annotations

from autoresearch_rl.agent.protocol import Proposer
from autoresearch_rl.decision import KeepRule
from autoresearch_rl.target.space import ActionSpace

RENAMED_PPO = ("ppo", "ppo_edits")  # the per-action learner: its name in campaigns before `ppo` was meta-trained, and now
AGENTS = ("ppo", "ppo_meta", "ppo_meta_frozen", "ppo_prior", "ppo_edits", "random", "greedy", "tpe", "evolution",
          "gp_local")


def make_proposer(name: str, base_source: str, space: ActionSpace, seed: int = 0, reward_clip: float = 5.0) -> Proposer:
    """A fresh proposer; the loop restores its memory from the ledger (and its checkpoint)."""
    if name == "ppo_edits":
        from autoresearch_rl.agent.ppo_agent import PPOProposer

        return PPOProposer(base_source, space, seed=seed, reward_clip=reward_clip)
    if name == "random":
        from autoresearch_rl.agent.baselines import RandomProposer

        return RandomProposer(seed)
    if name == "greedy":
        from autoresearch_rl.agent.baselines import GreedyProposer

        return GreedyProposer(seed)
    if name == "tpe":
        from autoresearch_rl.agent.tpe import TPEProposer

        return TPEProposer(base_source, seed, device=space.device)
    from autoresearch_rl.agent.space_agent import SPACE_AGENTS

    if name in SPACE_AGENTS:  # the simulated campaigns' agents, on the train.py's constants and variants
        from autoresearch_rl.agent.space_agent import SpaceAgentProposer

        return SpaceAgentProposer(name, base_source, seed, device=space.device)
    raise ValueError(f"unknown agent {name!r}; choose one of {', '.join(AGENTS)}")


def default_keep_rule(name: str) -> KeepRule:
    """Greedy hill-climbing is the reference protocol (keep if strictly better); the rest keep beyond the noise."""
    return KeepRule(strict=True) if name == "greedy" else KeepRule()
