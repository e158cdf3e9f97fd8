"""`Proposer`: what to run next. `Learner`: a proposer with an explicit update step the loop calls.

`propose` reads the campaign state and returns a `Proposal` (an edited configuration, or a
re-measurement of the incumbent). `observe` is told each decided experiment once, after its
decision (search agents with their own model, such as Optuna's samplers, learn there). The loop
calls `update` when `ready()`: a policy update is never a side effect of proposing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from autoresearch_rl.core.space import Config
from autoresearch_rl.core.state import CampaignState, Experiment


@dataclass(frozen=True)
class Proposal:
    config: Config
    kind: str = "edit"  # "edit" (a new configuration) or "remeasure" (another run of the incumbent)
    info: dict[str, Any] = field(default_factory=dict)  # JSON: features, action, log-prob (stored in the log)


@runtime_checkable
class Proposer(Protocol):
    name: str

    def propose(self, state: CampaignState) -> Proposal: ...

    def observe(self, state: CampaignState, experiment: Experiment) -> None: ...


@runtime_checkable
class Learner(Protocol):
    version: int

    def ready(self) -> bool: ...

    def update(self, state: CampaignState) -> dict[str, float]: ...
