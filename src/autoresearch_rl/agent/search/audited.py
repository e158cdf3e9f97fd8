"""The self-audit as a proposer decorator: a fixed share of proposals are uniformly random configurations.

Is the agent better than chance on *this* campaign? A seeded coin per proposal (`selfeval/audit.is_audit`,
the same on every machine and after a resume) hands that share of proposals to random search; the
report compares how often each side's candidates were kept (`selfeval/audit.audit`). The audited
proposer still observes every decision, audit candidates included (its view of the campaign is whole),
but it is replayed and rewarded only for the proposals it made. Everything else (its update step, its
version, `fresh_only`, `admissible`) is the audited proposer's own.
"""

from __future__ import annotations

from typing import Any

from autoresearch_rl.core.events import Proposed
from autoresearch_rl.core.proposer import Proposal, Proposer
from autoresearch_rl.core.space import DiscreteSpace
from autoresearch_rl.core.state import CampaignState, Experiment
from autoresearch_rl.loop_config import derive_seed
from autoresearch_rl.selfeval.audit import is_audit


class Audited:
    def __init__(self, inner: Proposer, space: DiscreteSpace, seed: int, fraction: float) -> None:
        from autoresearch_rl.agent.search.simple import RandomSearch

        self.inner = inner
        self.seed = seed
        self.fraction = fraction
        self.auditor = RandomSearch(space, derive_seed(seed, "audit"))

    @property
    def name(self) -> str:
        return self.inner.name

    def __getattr__(self, attribute: str) -> Any:  # the learner's own: update, ready, version, fresh_only, ...
        return getattr(self.inner, attribute)

    def __setattr__(self, attribute: str, value: Any) -> None:
        if attribute in ("inner", "seed", "fraction", "auditor"):
            object.__setattr__(self, attribute, value)
        else:
            setattr(self.inner, attribute, value)

    def _audits(self, state: CampaignState) -> bool:
        return is_audit(self.seed, len(state.edits), self.fraction)

    def propose(self, state: CampaignState) -> Proposal:
        if not self._audits(state):
            return self.inner.propose(state)
        proposal = self.auditor.propose(state)
        return Proposal(proposal.config, proposal.kind, {**proposal.info, "audit": True, "agent": self.auditor.name})

    def observe(self, state: CampaignState, experiment: Experiment) -> None:
        self.inner.observe(state, experiment)

    def replay_proposal(self, state: CampaignState, event: Proposed) -> None:
        replay = getattr(self.inner, "replay_proposal", None)
        if replay is not None and not event.info.get("audit"):
            replay(state, event)
