"""The ask/tell protocol every proposer implements: PPO, random, greedy hill-climbing, Optuna TPE.

The loop asks `propose(state)` for the next candidate and tells `observe(transition)` how it went.
Nothing else crosses the boundary, so the loop, the benchmarks and a distributed backend can swap
proposers with one argument, and a proposer never cares where an experiment ran.

A proposer's memory must survive a killed controller. Two ways, both through the ledger:
- stateless or rebuildable proposers (random, greedy, TPE) are rebuilt by replaying every recorded
  transition through `observe`;
- learners (PPO) checkpoint `state_dict()` after each update; on resume they load it and replay only
  the transitions recorded after it. Whatever a proposer needs to replay a transition (its action,
  log-probability, value estimate, observation) it puts in `Proposal.info`, which the ledger stores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from autoresearch_rl.experiment import Status
from autoresearch_rl.target.space import ActionSpace


@dataclass(frozen=True)
class Proposal:
    """One candidate: an edit of the incumbent (operator, arg) or a full configuration of the base (params)."""

    operator: str  # e.g. "scale:MATRIX_LR", "activation"; "config" for a config-space proposal
    arg: str  # e.g. "x1.2", "swiglu"; "" for a config-space proposal
    kind: str  # "hyperparameter", "structural" or "config"
    info: dict[str, Any] = field(default_factory=dict)  # JSON; stored in the ledger, handed back in observe()
    params: dict[str, Any] | None = None  # config-space view: constant -> value, applied to the base train.py


@dataclass(frozen=True)
class Transition:
    """A decided experiment, as a proposer learns from it."""

    exp_id: int
    iteration: int  # 0-based index among decided candidates
    operator: str
    arg: str
    kind: str
    status: Status  # KEPT, DISCARDED or a failure status
    val_bpb: float | None  # the candidate's score (mean over its runs when it was confirmed)
    reward: float
    incumbent_val_bpb: float  # the incumbent it was compared with
    parent_hash: str  # source hash of the incumbent it was derived from
    info: dict[str, Any] = field(default_factory=dict)  # Proposal.info as proposed
    params: dict[str, Any] | None = None

    @property
    def kept(self) -> bool:
        return self.status is Status.KEPT

    @property
    def failed(self) -> bool:
        return self.status.failed


@dataclass(frozen=True)
class SearchState:
    """What a proposer may look at when it proposes (s_t of the MDP)."""

    incumbent_source: str  # the best kept train.py
    incumbent_hash: str
    incumbent_val_bpb: float
    base_source: str  # the campaign's baseline train.py (the config-space view edits its constants)
    space: ActionSpace  # stable indexing of (operator, arg); fixed for the campaign
    mask: tuple[bool, ...]  # which actions apply to the incumbent now
    history: tuple[Transition, ...]  # decided candidates, oldest first
    noise_sigma: float  # seed standard deviation of val_bpb from calibration
    budget_used: float = 0.0  # fraction of the tightest configured budget spent, in [0, 1]
    proposal_index: int | None = None  # proposals made before this one (decided or still running); None: len(history)

    @property
    def iteration(self) -> int:
        """Index of the proposal being made: unique even when several proposals wait on one history."""
        return len(self.history) if self.proposal_index is None else self.proposal_index

    @property
    def applicable(self) -> list[int]:
        return [i for i, ok in enumerate(self.mask) if ok]


@runtime_checkable
class Proposer(Protocol):
    """Ask/tell. `propose` must return an applicable action (or params); `observe` sees every decided candidate once."""

    name: str

    def propose(self, state: SearchState) -> Proposal: ...

    def observe(self, transition: Transition) -> None: ...


@runtime_checkable
class Learner(Protocol):
    """A proposer whose memory is more than its transitions: it learns in an explicit step the loop calls
    (`update` when `ready()`, before the next proposal), and is checkpointed after each update."""

    updates: int  # completed policy updates (the policy version)

    def ready(self) -> bool: ...

    def update(self, state: SearchState) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
