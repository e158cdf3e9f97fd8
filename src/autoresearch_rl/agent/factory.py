"""Proposers by name, as `arl run --agent NAME` and the benchmarks choose them."""

from __future__ import annotations

from autoresearch_rl.agent.protocol import Proposer
from autoresearch_rl.decision import KeepRule
from autoresearch_rl.target.space import ActionSpace

AGENTS = ("ppo", "random", "greedy", "tpe", "ppo_meta", "evolution", "gp_local")


def make_proposer(name: str, base_source: str, space: ActionSpace, seed: int = 0, reward_clip: float = 5.0) -> Proposer:
    """A fresh proposer; the loop restores its memory from the ledger (and its checkpoint)."""
    if name == "ppo":
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
    if name in ("ppo_meta", "evolution", "gp_local"):  # the simulated campaigns' agents, on the train.py's constants
        from autoresearch_rl.agent.space_agent import SpaceAgentProposer

        return SpaceAgentProposer(name, base_source, seed, device=space.device)
    raise ValueError(f"unknown agent {name!r}; choose one of {', '.join(AGENTS)}")


def default_keep_rule(name: str) -> KeepRule:
    """Greedy hill-climbing is the reference protocol (keep if strictly better); the rest keep beyond the noise."""
    return KeepRule(strict=True) if name == "greedy" else KeepRule()
