"""Baseline proposers behind the same ask/tell protocol: uniform random and greedy hill-climbing.

Both draw from a generator seeded by (campaign seed, iteration), so they carry no state that a killed
controller could lose: replaying the ledger rebuilds them exactly.
"""

from __future__ import annotations

import random

from autoresearch_rl.agent.protocol import Proposal, SearchState, Transition


def _rng(seed: int, iteration: int, salt: str) -> random.Random:
    return random.Random(f"{salt}:{seed}:{iteration}")


def _proposal(state: SearchState, index: int) -> Proposal:
    action = state.space.actions[index]
    return Proposal(operator=action.operator, arg=action.arg, kind=action.kind, info={"action": index})


class RandomProposer:
    """Uniform over the actions applicable to the incumbent (the keep rule is the loop's, as for every proposer)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def propose(self, state: SearchState) -> Proposal:
        applicable = state.applicable
        if not applicable:
            raise ValueError("no applicable edit for the incumbent")
        return _proposal(state, _rng(self.seed, state.iteration, self.name).choice(applicable))

    def observe(self, transition: Transition) -> None:
        pass  # memoryless by design


class GreedyProposer:
    """First-improvement hill climbing: try the incumbent's untried neighbours in random order.

    The reference protocol (try an edit, keep if better, revert otherwise) without repeats: an edit
    already tried on this incumbent is not tried again until every neighbour has been, after which
    it samples uniformly (a re-run may still win under noise).
    """

    name = "greedy"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def propose(self, state: SearchState) -> Proposal:
        applicable = state.applicable
        if not applicable:
            raise ValueError("no applicable edit for the incumbent")
        tried = {t.info.get("action") for t in state.history if t.parent_hash == state.incumbent_hash}
        untried = [i for i in applicable if i not in tried]
        return _proposal(state, _rng(self.seed, state.iteration, self.name).choice(untried or applicable))

    def observe(self, transition: Transition) -> None:
        pass  # everything it needs is in the state's history
