"""`Workers`: experiments in flight at once. Here: N simulated workers on a virtual clock.

The loop submits while a slot is free and collects what finished; with one worker it is the
synchronous loop (submit, then collect that run's outcome). `SimulatedWorkers` runs an `Executor`
at submission (a landscape answers in microseconds) and releases the outcome when its simulated
duration (the run's `cost_s`, else one time unit) has passed on a virtual clock. So an asynchronous
campaign of N workers is simulated deterministically, in memory: which results a proposal could see
is what it would have seen on N real machines whose runs took those durations.
"""

from __future__ import annotations

import heapq
from typing import Protocol, runtime_checkable

from autoresearch_rl.core.events import Aborted, Crashed, Scored
from autoresearch_rl.core.executor import Executor
from autoresearch_rl.core.space import Config

Outcome = Scored | Crashed | Aborted


@runtime_checkable
class Workers(Protocol):
    def free_slots(self) -> int: ...

    def submit(self, exp: int, config: Config, seed: tuple[int, ...], prune: object | None = None) -> None:
        """Start a run; `prune` is the pruner's rule the worker judges its loss curve by (None: none)."""
        ...

    def collect(self) -> list[Outcome]:
        """Outcomes of the runs that finished, at least one while any is in flight (blocking until then)."""
        ...

    def in_flight(self) -> frozenset[int]: ...


class SimulatedWorkers:
    def __init__(self, executor: Executor, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.executor = executor
        self.workers = workers
        self.clock = 0.0  # virtual time: the finish time of the last collected run
        self.finished_at: dict[int, float] = {}  # experiment -> virtual time its outcome was collected
        self._running: list[tuple[float, int, Outcome]] = []  # (finish time, submission order, outcome): a heap
        self._submitted = 0

    def free_slots(self) -> int:
        return self.workers - len(self._running)

    def submit(self, exp: int, config: Config, seed: tuple[int, ...], prune: object | None = None) -> None:
        if self.free_slots() <= 0:
            raise RuntimeError("submit with no free worker")
        # `prune` is ignored: a landscape answers with a final value, there is no curve to stop early
        outcome = self.executor.run(exp, config, seed)
        duration = outcome.cost_s if outcome.cost_s > 0 else 1.0
        heapq.heappush(self._running, (self.clock + duration, self._submitted, outcome))
        self._submitted += 1

    def collect(self) -> list[Outcome]:
        if not self._running:
            return []
        finish, _, outcome = heapq.heappop(self._running)
        self.clock = max(self.clock, finish)
        self.finished_at[outcome.exp] = self.clock
        return [outcome]

    def in_flight(self) -> frozenset[int]:
        return frozenset(outcome.exp for _, _, outcome in self._running)
