"""The research loop: read state, ask, run, decide, record, repeat.

    state = fold(store)                      resume is the fold of what was recorded
    calibrate: run the start K times         sigma = their standard deviation
    until the stopper says so:
        proposal = a confirmation if one is owed, else proposer.propose(state)
        outcome  = executor.run(proposal)    Scored | Crashed
        decision = decider.decide(state)     kept | discarded | confirm | failed | measured
        proposer.observe(...); if proposer is a Learner and ready: update (its own event)

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
from autoresearch_rl.core.events import Calibrated, CampaignStarted, Decided, Event, PolicyUpdated, Proposed
from autoresearch_rl.core.executor import Executor
from autoresearch_rl.core.proposer import Learner, Proposal, Proposer
from autoresearch_rl.core.space import Config
from autoresearch_rl.core.state import CampaignState, Experiment, fold
from autoresearch_rl.core.stopper import Stopper
from autoresearch_rl.core.store import MemoryStore, Store

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
    executor: Executor
    stopper: Stopper
    decider: Decider = field(default_factory=NoiseAwareDecider)
    store: Store = field(default_factory=MemoryStore)
    drift: DriftMonitor | None = field(default_factory=DriftMonitor)  # inert unless runs report throughput
    calibration_runs: int = 3
    settings: dict[str, Any] = field(default_factory=dict)


class Loop:
    def __init__(self, campaign: Campaign, on_event: Callable[[Event, CampaignState], None] | None = None) -> None:
        self.c = campaign
        self.on_event = on_event
        self.state = fold(campaign.store.events())

    def record(self, event: Event) -> None:
        self.c.store.append(event)
        self.state = self.state.apply(event)
        if self.on_event is not None:
            self.on_event(event, self.state)

    def run(self) -> CampaignState:
        c = self.c
        if not self.state.started:
            self.record(CampaignStarted(c.task, c.seed, tuple(c.start), c.calibration_runs, dict(c.settings)))
        self._replay_observations()
        while self.state.stopped is None:
            if not self.state.calibrated:
                self._calibrate_step()
            elif c.drift is not None and (rebased := c.drift.pending_rebase(self.state)) is not None:
                self.record(rebased)  # the machine changed: compare only within the new conditions from here
            elif (unrun := self._first(lambda e: e.outcome == "pending")) is not None:
                self._execute(unrun.exp)  # proposed before a kill, never run: run it now
            elif (undecided := self._first(self._needs_decision)) is not None:
                self._decide(undecided.exp)  # ran before a kill (or its confirmation just ran): decide it
            elif (stop := c.stopper.check(self.state)) is not None:
                self.record(stop)  # a candidate still owed a confirmation stays unconfirmed (never kept)
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

    def _owed_remeasure(self) -> tuple[int, str] | None:
        """The drift monitor's due incumbent re-measurement; a periodic one waits for an owed confirmation."""
        owed = self.c.drift.owed_remeasure(self.state) if self.c.drift is not None else None
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
        """Propose, then run and record the outcome (a kill in between: the resumed loop runs the proposed one)."""
        exp = len(self.state.experiments)
        self.record(Proposed(exp, tuple(proposal.config), proposal.kind, parent, dict(proposal.info)))
        self._execute(exp)

    def _execute(self, exp: int) -> None:
        e = self.state.experiments[exp]
        nth = self.state.measurement_counts[e.config] - 1  # earlier runs of this configuration (itself included)
        self.record(self.c.executor.run(exp, e.config, (self.state.seed, *e.config, nth)))

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
            metrics = proposer.update(self.state)
            self.record(PolicyUpdated(proposer.version, metrics))

    def _calibrate_step(self) -> None:
        s = self.state
        runs = [e for e in s.experiments if e.kind == "calibration"]
        pending = [e for e in runs if e.outcome == "pending"]
        if pending:  # proposed before a kill, never run
            self._execute(pending[0].exp)
            return
        values = [e.value for e in runs if e.outcome == "scored" and e.value is not None]
        limit = s.calibration_runs * MAX_CALIBRATION_FACTOR
        spread = statistics.stdev(values) if len(values) >= 2 else 0.0
        if len(values) >= s.calibration_runs and (spread > 0 or len(runs) >= limit):
            self.record(Calibrated(sigma=spread, baseline=statistics.fmean(values)))
            return
        if len(runs) >= limit:
            raise CalibrationError(f"the start configuration gave {len(values)} scored runs in {len(runs)} "
                                   f"(need {s.calibration_runs}): it crashes too often to calibrate the noise")
        self._run(Proposal(s.start, "calibration"), parent=None)

    def _replay_observations(self) -> None:
        """A resumed proposer is told every decided experiment again (its memory is the log)."""
        for e in self.state.experiments:
            if e.verdict is not None and e.verdict != "confirm" and e.kind != "calibration":
                self.c.proposer.observe(self.state, e)


def run_campaign(campaign: Campaign, on_event: Callable[[Event, CampaignState], None] | None = None) -> CampaignState:
    return Loop(campaign, on_event).run()


