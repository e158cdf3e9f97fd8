"""Search agents by name, as the benchmark and the in-memory campaigns choose them."""

from __future__ import annotations

from autoresearch_rl.core.proposer import Proposer
from autoresearch_rl.core.space import DiscreteSpace

SEARCH_AGENTS = ("ppo", "ppo_frozen", "random", "greedy", "evolution", "gp_local", "cmaes", "tpe", "bandit")


def make_search_agent(name: str, space: DiscreteSpace, seed: int = 0, horizon: int = 200) -> Proposer:
    if name in ("ppo", "ppo_frozen"):
        from autoresearch_rl.agent.search.candidate_ppo import CandidatePPO

        agent = CandidatePPO(space, seed=seed, horizon=horizon, learn=name == "ppo")
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
