"""Search agents over a discrete space, each a `core.proposer.Proposer` running through the same loop and keep rule.

random (random search), greedy (local search), evolution (regularized evolution), gp_local (model-based
local search), cmaes and tpe (Optuna), bandit (per-knob UCB), ppo (our candidate-scoring policy).
"""

from autoresearch_rl.agent.search.registry import SEARCH_AGENTS, make_search_agent

__all__ = ["SEARCH_AGENTS", "make_search_agent"]
