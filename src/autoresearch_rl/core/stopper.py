"""`Stopper`: when a campaign ends. Budgets, and the termination oracle read from the campaign state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from autoresearch_rl.core.events import Stopped
from autoresearch_rl.core.state import CampaignState
from autoresearch_rl.oracle.rules import CampaignProgress
from autoresearch_rl.oracle.termination import TerminationOracle


class Stopper(Protocol):
    def check(self, state: CampaignState) -> Stopped | None: ...


@dataclass(frozen=True)
class MaxIterations:
    limit: int

    def check(self, state: CampaignState) -> Stopped | None:
        if state.iterations >= self.limit:
            return Stopped("max_iters", f"reached {self.limit} iterations")
        return None


def progress_of(state: CampaignState, entropy_ratio: float | None = None,
                entropy_floor_ratio: float | None = None) -> CampaignProgress:
    """The oracle's view of a campaign state (time is simulated: the summed cost of its runs)."""
    hours = sum(e.cost_s for e in state.experiments) / 3600.0
    return CampaignProgress(iterations=state.iterations, elapsed_hours=hours, device_hours=hours,
                            improvement_iterations=state.improvements, entropy_ratio=entropy_ratio,
                            entropy_floor_ratio=entropy_floor_ratio)


@dataclass(frozen=True)
class Oracle:
    """The termination oracle of `arl run` (`oracle/`: stop file, budgets, convergence) on the campaign state.
    Device hours are the summed cost of the runs (wall seconds of real runs, simulated ones in memory);
    elapsed hours are the same unless `wall_hours` tells the campaign's wall clock (a real campaign with N
    workers spends N device-hours per hour)."""

    oracle: TerminationOracle
    wall_hours: Callable[[], float] | None = None

    def check(self, state: CampaignState) -> Stopped | None:
        progress = progress_of(state)
        if self.wall_hours is not None:
            progress = replace(progress, elapsed_hours=self.wall_hours())
        decision = self.oracle.check(progress)
        return Stopped(decision.rule, decision.reason) if decision else None


@dataclass(frozen=True)
class AnyOf:
    stoppers: Sequence[Stopper]

    def check(self, state: CampaignState) -> Stopped | None:
        for s in self.stoppers:
            if (stop := s.check(state)) is not None:
                return stop
        return None
