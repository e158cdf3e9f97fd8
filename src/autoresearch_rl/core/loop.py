"""The research loop: read state, ask, run, decide, record, repeat.

    state = fold(store)                      resume is the fold of what was recorded
    calibrate: run the start K times         sigma = their standard deviation
    until the stopper says so:
        proposal = a confirmation if one is owed, else proposer.propose(state)
        start it on a free worker; when none is free, collect an outcome (Scored | Crashed | Aborted)
        decision = decider.decide(state)     kept | discarded | confirm | failed | measured
        proposer.observe(...); if proposer is a Learner and ready: update (its own event)

With one worker (the default) each run's outcome is recorded before the next proposal: the
synchronous loop. With N (`core/workers.py`) the proposer is asked while others run; a candidate is
rewarded against the incumbent it was derived from and kept only if it beats the current one. When
the stopper fires nothing new starts; the runs in flight are finished and decided first.

The drift monitor (`drift.py`) may defer a decision ("deferred") and owe re-measurements of the
incumbent; they run before anything new, and a changed machine is recorded as `Rebased`.

Every fact goes through `record`, which appends the event to the store and folds it into the state;
nothing else changes state. The same loop runs a simulated campaign with a `MemoryStore` and a
`LandscapeExecutor` in memory, at thousands of decisions per second.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autoresearch_rl.core.decider import Decider, NoiseAwareDecider
from autoresearch_rl.core.drift import DriftMonitor
from autoresearch_rl.core.events import (Calibrated, CampaignStarted, Decided, Event, PolicyUpdated, Proposed,
                                         Resumed, Stopped)
from autoresearch_rl.core.executor import Executor
from autoresearch_rl.core.proposer import Learner, Proposal, Proposer
from autoresearch_rl.core.pruner import Pruner
from autoresearch_rl.core.space import Config
from autoresearch_rl.core.state import CampaignState, Experiment, fold
from autoresearch_rl.core.stopper import Stopper
from autoresearch_rl.core.store import MemoryStore, Store
from autoresearch_rl.core.workers import SimulatedWorkers, Workers

MAX_CALIBRATION_FACTOR = 3  # identical calibration draws (a coarse table) ask for more runs, up to 3x


class CalibrationError(RuntimeError):
    """The start configuration does not give the measurements calibration needs."""


@dataclass
class Campaign:
    """What one campaign is made of; `Loop(campaign).run()` runs it to its stop."""

    task: str
    seed: int
    start: Config
    proposer: Proposer
    executor: Executor | Workers  # a bare Executor runs on one worker: the synchronous loop
    stopper: Stopper
    decider: Decider = field(default_factory=NoiseAwareDecider)
    store: Store = field(default_factory=MemoryStore)
    drift: DriftMonitor | None = field(default_factory=DriftMonitor)  # inert unless runs report throughput
    pruner: Pruner | None = None  # early abort: what a worker judges a candidate's loss curve by
    calibration_runs: int = 3
    settings: dict[str, Any] = field(default_factory=dict)


class Loop:
    def __init__(self, campaign: Campaign, on_event: Callable[[Event, CampaignState], None] | None = None) -> None:
        self.c = campaign
        self.on_event = on_event
        self.state = fold(campaign.store.events())
        executor = campaign.executor
        self.workers: Workers = executor if isinstance(executor, Workers) else SimulatedWorkers(executor)
        self._stopping: Stopped | None = None  # the stopper fired: nothing new starts, the runs in flight finish

    def record(self, event: Event) -> None:
        self.c.store.append(event)
        self.state = self.state.apply(event)
        if self.on_event is not None:
            self.on_event(event, self.state)

    def run(self) -> CampaignState:
        c = self.c
        if not self.state.started:
            self.record(CampaignStarted(c.task, c.seed, tuple(c.start), c.calibration_runs, dict(c.settings)))
        elif self.state.stopped is not None and c.stopper.check(self.state) is None:
            self.record(Resumed(self.state.stopped.rule))  # reopened with a larger budget: it goes on
        self._replay()
        while self.state.stopped is None:
            if not self.state.calibrated:
                self._calibrate_step()
            elif c.drift is not None and (rebased := c.drift.pending_rebase(self.state)) is not None:
                self.record(rebased)  # the machine changed: compare only within the new conditions from here
            elif self._free() and (orphan := self._first(self._orphaned)) is not None:
                self._execute(orphan.exp)  # proposed before a kill, never run: run it now
            elif (undecided := self._first(self._needs_decision)) is not None:
                self._decide(undecided.exp)  # ran before a kill (or its confirmation just ran): decide it
            elif (stop := self._stop()) is not None:
                if self._busy():
                    self._collect()  # nothing new starts; the runs in flight are finished and decided first
                else:
                    self.record(stop)  # a candidate still owed a confirmation stays unconfirmed (never kept)
            elif not self._free():
                self._collect()
            elif (owed_run := self._owed_remeasure()) is not None:
                parent, why = owed_run
                self._run(Proposal(self.state.incumbent, "remeasure", {"why": why}), parent=parent)
            elif (owed := self.state.awaiting_confirmation()) is not None:
                self._run(Proposal(owed.config, "confirm"), parent=owed.exp)
            else:
                self._run(c.proposer.propose(self.state), parent=self.state.incumbent_exp)
        return self.state

    def _first(self, predicate: Callable[[Experiment], bool]) -> Experiment | None:
        return next((e for e in self.state.experiments if e.kind != "calibration" and predicate(e)), None)

    def _free(self) -> bool:
        return self.workers.free_slots() > 0

    def _busy(self) -> bool:
        return bool(self.workers.in_flight())

    def _orphaned(self, e: Experiment) -> bool:
        return e.outcome == "pending" and e.exp not in self.workers.in_flight()

    def _stop(self) -> Stopped | None:
        """The stopper's verdict, asked again once the runs in flight are decided (they may change it)."""
        if self._stopping is None or not self._busy():
            self._stopping = self.c.stopper.check(self.state)
        return self._stopping

    def _owed_remeasure(self) -> tuple[int, str] | None:
        """The drift monitor's due incumbent re-measurement; a periodic one waits for an owed confirmation,
        and none starts while another is in flight (it would be owed until that one is measured)."""
        if self.c.drift is None or any(self.state.experiments[i].kind == "remeasure" for i in self.workers.in_flight()):
            return None
        owed = self.c.drift.owed_remeasure(self.state)
        if owed is not None and owed[1] == "periodic" and self.state.awaiting_confirmation() is not None:
            return None
        return owed

    def _needs_decision(self, e: Experiment) -> bool:
        if e.kind == "confirm" or e.outcome == "pending":
            return False
        if e.verdict is None:
            return True
        if e.verdict == "deferred":
            return self.c.drift is not None and not self.c.drift.defers(self.state, e.exp)
        return e.verdict == "confirm" and self.state.confirmations_finished(e.exp) > 0

    # ---- steps -------------------------------------------------------------------------------

    def _run(self, proposal: Proposal, parent: int | None) -> None:
        """Propose, then start the run (a kill in between: the resumed loop runs the proposed one)."""
        exp = len(self.state.experiments)
        self.record(Proposed(exp, tuple(proposal.config), proposal.kind, parent, dict(proposal.info)))
        self._execute(exp)

    def _execute(self, exp: int) -> None:
        """Start the run; with one worker its outcome is recorded before this returns (the synchronous loop)."""
        e, seed = self.state.experiments[exp], self.state.measurement_seed(exp)
        prune = self.c.pruner.rule(self.state, exp, seed) if self.c.pruner is not None else None
        self.workers.submit(exp, e.config, seed, prune)
        if not self._free():
            self._collect()

    def _collect(self) -> None:
        outcomes = self.workers.collect()
        if not outcomes:
            raise RuntimeError("the loop waits for runs but none is in flight")  # a bug, not a user error
        for outcome in outcomes:
            self.record(outcome)

    def _decide(self, exp: int) -> None:
        drift = self.c.drift
        if drift is not None and drift.defers(self.state, exp):
            self.record(Decided(exp, "deferred", 0.0, 0.0))  # the loop re-measures the incumbent first
            return
        decision = self.c.decider.decide(self.state, exp)
        self.record(Decided(exp, decision.verdict, decision.margin, decision.reward))
        if decision.verdict == "confirm":
            return
        proposer = self.c.proposer
        proposer.observe(self.state, self.state.experiments[exp])
        if isinstance(proposer, Learner) and proposer.ready():
            self._update()

    def _update(self) -> None:
        """The policy update: an explicit step after a decision, recorded as its own event."""
        metrics = self.c.proposer.update(self.state)  # type: ignore[attr-defined]
        self.record(PolicyUpdated(self.c.proposer.version, metrics))  # type: ignore[attr-defined]

    def _calibrate_step(self) -> None:
        """Run the start until `calibration_runs` are scored (as many at once as there are workers)."""
        s = self.state
        runs = [e for e in s.experiments if e.kind == "calibration"]
        orphans = [e for e in runs if self._orphaned(e)]
        if orphans and self._free():  # proposed before a kill, never run
            self._execute(orphans[0].exp)
            return
        values = [e.value for e in runs if e.outcome == "scored" and e.value is not None]
        running = sum(e.outcome == "pending" for e in runs)
        limit = s.calibration_runs * MAX_CALIBRATION_FACTOR
        spread = statistics.stdev(values) if len(values) >= 2 else 0.0
        if not running and len(values) >= s.calibration_runs and (spread > 0 or len(runs) >= limit):
            self.record(Calibrated(sigma=spread, baseline=statistics.fmean(values)))
        elif self._free() and len(runs) < limit and (len(values) + running < s.calibration_runs or not running):
            self._run(Proposal(s.start, "calibration"), parent=None)
        elif running:
            self._collect()
        else:
            raise CalibrationError(f"the start configuration gave {len(values)} scored runs in {len(runs)} "
                                   f"(need {s.calibration_runs}): it crashes too often to calibrate the noise")

    def _replay(self) -> None:
        """A resumed proposer is taken through the log as it lived it: each of its proposals in the state it was
        made in (`replay_proposal`, for a proposer with memory per proposal), each decision it was told, each
        policy update where the log has one. Its memory is the log; an update a kill cut off is made now."""
        proposer = self.c.proposer
        replay_proposal = getattr(proposer, "replay_proposal", None)
        learner = isinstance(proposer, Learner)
        state = CampaignState()
        for event in self.c.store.events():
            if isinstance(event, Proposed) and replay_proposal is not None:
                replay_proposal(state, event)
            elif isinstance(event, PolicyUpdated) and learner:
                proposer.update(state)  # type: ignore[union-attr]
            state = state.apply(event)
            if isinstance(event, Decided) and event.verdict not in ("confirm", "deferred"):
                proposer.observe(state, state.experiments[event.exp])
        if learner and proposer.ready():  # type: ignore[union-attr]
            self._update()


def run_campaign(campaign: Campaign, on_event: Callable[[Event, CampaignState], None] | None = None) -> CampaignState:
    return Loop(campaign, on_event).run()


