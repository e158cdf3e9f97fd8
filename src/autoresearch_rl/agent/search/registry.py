"""Search agents by name, as the benchmark and the in-memory campaigns choose them.

`ppo` is the shipped default: the candidate-scoring policy meta-trained across simulated campaigns
(`agent/weights/ppo_meta.pt`, made by `arl pretrain`), fine-tuned online with a small step size.
Ablations: `ppo_meta_frozen` (the meta-trained weights, never updated), `ppo_prior` (the hand-set
prior, trained online only: what one campaign can learn by itself).
"""

from __future__ import annotations

from pathlib import Path

from autoresearch_rl.core.proposer import Proposer
from autoresearch_rl.core.space import DiscreteSpace

SEARCH_AGENTS = ("ppo", "ppo_meta", "ppo_meta_frozen", "ppo_prior", "random", "greedy", "evolution", "gp_local",
                 "cmaes", "tpe", "bandit")
META_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "ppo_meta.pt"
FINE_TUNE_LR = 1e-5  # online steps on a new task stay small: the prior is what many campaigns taught


def make_search_agent(name: str, space: DiscreteSpace, seed: int = 0, horizon: int = 200,
                      weights: Path | None = None) -> Proposer:
    if name in ("ppo", "ppo_meta", "ppo_meta_frozen", "ppo_prior"):
        from autoresearch_rl.agent.ppo import PPOConfig
        from autoresearch_rl.agent.search.candidate_ppo import CandidatePPO

        if name == "ppo_prior":
            agent = CandidatePPO(space, seed=seed, horizon=horizon, learn=True)
        else:
            config = PPOConfig(learning_rate=FINE_TUNE_LR, gamma=0.9, gae_lambda=0.95)
            agent = CandidatePPO(space, seed=seed, horizon=horizon, config=config, learn=name != "ppo_meta_frozen")
            agent.load_weights(weights or META_WEIGHTS)
        agent.name = name
        return agent
    if name == "random":
        from autoresearch_rl.agent.search.simple import RandomSearch

        return RandomSearch(space, seed)
    if name == "greedy":
        from autoresearch_rl.agent.search.simple import GreedyLocalSearch

        return GreedyLocalSearch(space, seed)
    if name == "evolution":
        from autoresearch_rl.agent.search.evolution import RegularizedEvolution

        return RegularizedEvolution(space, seed)
    if name == "gp_local":
        from autoresearch_rl.agent.search.model_based import GPLocalSearch

        return GPLocalSearch(space, seed)
    if name in ("cmaes", "tpe"):
        from autoresearch_rl.agent.search.optuna_search import OptunaSearch

        return OptunaSearch(space, seed, sampler=name)
    if name == "bandit":
        from autoresearch_rl.agent.search.bandit import KnobBandit

        return KnobBandit(space, seed)
    raise ValueError(f"unknown search agent {name!r}; choose from {', '.join(SEARCH_AGENTS)}")
