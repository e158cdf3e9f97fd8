"""What a stop rule sees and says, and the simple rules: the three budgets and the stop file.

A rule is a pure function of a `CampaignProgress` snapshot (plus, for `StopFile`, the file
system), so the loop can ask after every experiment and a resumed campaign gets the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

Details = dict[str, float | int | str | None]


@dataclass(frozen=True)
class CampaignProgress:
    """What the oracle sees after each experiment (a snapshot; built by the loop from the ledger)."""

    iterations: int
    """Experiments decided after calibration."""
    elapsed_hours: float
    """Wall clock since the campaign started (summed over resumed sessions)."""
    device_hours: float
    """Sum of the experiments' run times (device occupied), in hours."""
    improvement_iterations: tuple[int, ...]
    """Iterations (1-based) at which a kept improvement exceeded the noise margin."""
    entropy_ratio: float | None = None
    """Policy entropy / log(n applicable) of the latest proposal; None for proposers without a policy."""
    entropy_floor_ratio: float | None = None
    """Lowest ratio the exploration floor allows (near-deterministic policy + epsilon mixing); None if unknown."""
    audit: Any = None
    """selfeval.audit.AuditSummary: the agent against interleaved random proposals; None without audits."""

    def __post_init__(self) -> None:
        # A bad snapshot is a harness bug: fail loudly rather than stop (or never stop) for a wrong reason.
        if self.iterations < 0 or self.elapsed_hours < 0 or self.device_hours < 0:
            raise ValueError(f"negative progress: {self!r}")
        bad = [i for i in self.improvement_iterations if not 1 <= i <= self.iterations]
        if bad:
            raise ValueError(f"improvement iterations {bad} outside 1..{self.iterations}")

    @property
    def last_improvement(self) -> int | None:
        """Iteration of the latest significant improvement, None when there was none."""
        return max(self.improvement_iterations, default=None)

    @property
    def iterations_since_improvement(self) -> int:
        """Iterations after the latest significant improvement (all of them when there was none)."""
        return self.iterations - (self.last_improvement or 0)


@dataclass(frozen=True)
class StopDecision:
    """Why the campaign stops: the rule, one sentence for the user, and the numbers behind it."""

    rule: str
    """'max_iters', 'max_hours', 'max_device_hours', 'converged', 'stop_file' or 'user_interrupt'."""
    reason: str
    """One human sentence with the numbers, printed by the loop and kept in the ledger."""
    details: Details
    """JSON-serialisable numbers behind the reason."""


@runtime_checkable
class StopRule(Protocol):
    """Decides from a snapshot whether the campaign should stop; None means go on."""

    name: str

    def check(self, progress: CampaignProgress) -> StopDecision | None: ...


def _progress_details(progress: CampaignProgress) -> Details:
    return {
        "iterations": progress.iterations,
        "elapsed_hours": progress.elapsed_hours,
        "device_hours": progress.device_hours,
    }


@dataclass(frozen=True)
class MaxIterations:
    """Stops once `limit` experiments have been decided after calibration."""

    limit: int
    """Most iterations the campaign may run."""
    name = "max_iters"

    def check(self, progress: CampaignProgress) -> StopDecision | None:
        if progress.iterations < self.limit:
            return None
        reason = f"max_iters: ran {progress.iterations} iterations, the budget is {self.limit}"
        return StopDecision(self.name, reason, {**_progress_details(progress), "limit": self.limit})


@dataclass(frozen=True)
class MaxHours:
    """Stops once the campaign's wall clock (over all sessions) reaches `limit` hours."""

    limit: float
    """Most wall-clock hours the campaign may run."""
    name = "max_hours"

    def check(self, progress: CampaignProgress) -> StopDecision | None:
        if progress.elapsed_hours < self.limit:
            return None
        reason = (f"max_hours: {progress.elapsed_hours:.2f} h elapsed since the campaign started, "
                  f"the budget is {self.limit:g} h")
        return StopDecision(self.name, reason, {**_progress_details(progress), "limit": self.limit})


@dataclass(frozen=True)
class MaxDeviceHours:
    """Stops once experiments have occupied the device for `limit` hours (what a rented GPU costs)."""

    limit: float
    """Most device hours the experiments may use."""
    name = "max_device_hours"

    def check(self, progress: CampaignProgress) -> StopDecision | None:
        if progress.device_hours < self.limit:
            return None
        reason = (f"max_device_hours: experiments used {progress.device_hours:.2f} device hours, "
                  f"the budget is {self.limit:g} h")
        return StopDecision(self.name, reason, {**_progress_details(progress), "limit": self.limit})


@dataclass(frozen=True)
class StopFile:
    """Stops when `path` exists: a way to end a detached campaign cleanly between experiments.

    The oracle never deletes the file, so a campaign restarted by mistake stops again at once.
    """

    path: Path
    """File whose existence asks the campaign to stop."""
    name = "stop_file"

    def check(self, progress: CampaignProgress) -> StopDecision | None:
        if not Path(self.path).exists():
            return None
        reason = f"stop_file: found {self.path}; delete it to resume the campaign"
        return StopDecision(self.name, reason, {**_progress_details(progress), "path": str(self.path)})


def user_interrupt(progress: CampaignProgress) -> StopDecision:
    """The decision the loop records when the user presses Ctrl-C (no rule polls for it)."""
    reason = (f"user_interrupt: stopped by the user after {progress.iterations} iterations "
              f"and {progress.elapsed_hours:.2f} h; the campaign can be resumed")
    return StopDecision("user_interrupt", reason, _progress_details(progress))
