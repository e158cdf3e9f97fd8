"""CampaignState: the pure fold of a campaign's events. No I/O; resume = fold the stored log.

`state.apply(event)` returns a new state; `fold(events)` applies them from the empty state. What
the loop, the proposers, the stoppers and the benchmark want to know (incumbent, its value as the
mean of all its measurements, the noise sigma, iterations, pending work) is read from here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from autoresearch_rl.core.events import (Aborted, CampaignStarted, Calibrated, Crashed, Decided, Event,
                                         PolicyUpdated, Proposed, Rebased, Resumed, Scored, Stopped)
from autoresearch_rl.core.space import Config


@dataclass(frozen=True)
class Experiment:
    """One proposed run and what became of it."""

    exp: int
    config: Config
    kind: str  # calibration | edit | confirm | remeasure
    parent: int | None
    info: dict[str, Any]
    outcome: str = "pending"  # pending | scored | crashed | aborted
    value: float | None = None  # the measurement (scored), or the pruner's prediction (aborted)
    cost_s: float = 0.0
    throughput: float | None = None  # tokens/s of the run, when the executor measures it
    verdict: str | None = None  # set by Decided: kept | discarded | confirm | deferred | failed | measured
    reward: float | None = None
    incumbent_value: float | None = None  # the incumbent's value when it was proposed (what it was compared with)
    details: dict[str, Any] = field(default_factory=dict)  # the run's record (real runs): curve, checks, logs

    @property
    def failed(self) -> bool:
        return self.outcome in ("crashed", "aborted")


@dataclass(frozen=True)
class CampaignState:
    task: str = ""
    seed: int = 0
    start: Config = ()
    calibration_runs: int = 0
    settings: dict[str, Any] = field(default_factory=dict)
    experiments: tuple[Experiment, ...] = ()
    calibrated_sigma: float | None = None  # seed noise of one measurement, from the calibration runs
    baseline: float | None = None  # the start's calibrated value
    incumbent: Config = ()
    incumbent_exp: int | None = None
    incumbent_values: tuple[float, ...] = ()  # every measurement of the incumbent's configuration (value: their mean)
    improvements: tuple[int, ...] = ()  # iterations (1-based) at which an edit was kept
    policy_version: int = 0
    stopped: Stopped | None = None
    reference_throughput: float | None = None  # the machine's speed the measurements are compared under
    regime_starts: tuple[int, ...] = ()  # experiments from which on the machine changed (Rebased): compare within

    # ---- the reducer -----------------------------------------------------------------------------

    def apply(self, event: Event) -> CampaignState:
        if isinstance(event, CampaignStarted):
            return replace(self, task=event.task, seed=event.seed, start=tuple(event.start),
                           calibration_runs=event.calibration_runs, settings=dict(event.settings),
                           incumbent=tuple(event.start))
        if isinstance(event, Proposed):
            if event.exp != len(self.experiments):
                raise ValueError(f"event log out of order: proposed exp {event.exp}, expected {len(self.experiments)}")
            exp = Experiment(event.exp, tuple(event.config), event.kind, event.parent, dict(event.info),
                             incumbent_value=self.incumbent_value)
            return replace(self, experiments=self.experiments + (exp,))
        if isinstance(event, Scored):
            state = self._update(event.exp, outcome="scored", value=event.value, cost_s=event.cost_s,
                                 throughput=event.throughput, details=event.details)
            if self.calibrated and state.experiments[event.exp].config == self.incumbent:
                state = replace(state, incumbent_values=self.incumbent_values + (event.value,))
            return state
        if isinstance(event, Crashed):
            return self._update(event.exp, outcome="crashed", cost_s=event.cost_s, details=event.details)
        if isinstance(event, Aborted):
            return self._update(event.exp, outcome="aborted", value=event.predicted, cost_s=event.cost_s,
                                details=event.details)
        if isinstance(event, Calibrated):
            values = tuple(e.value for e in self.experiments if e.kind == "calibration" and e.outcome == "scored")
            first = next((e.exp for e in self.experiments if e.kind == "calibration"), None)
            speeds = [e.throughput for e in self.experiments if e.kind == "calibration" and e.outcome == "scored"]
            reference = statistics.median(speeds) if speeds and all(t is not None for t in speeds) else None
            return replace(self, calibrated_sigma=event.sigma, baseline=event.baseline, incumbent_values=values,
                           incumbent_exp=first, reference_throughput=reference)
        if isinstance(event, Rebased):
            state = replace(self, reference_throughput=event.throughput,
                            regime_starts=self.regime_starts + (event.from_exp,))
            return replace(state, incumbent_values=tuple(state.values_of(state.incumbent)))
        if isinstance(event, Decided):
            state = self._update(event.exp, verdict=event.verdict, reward=event.reward)
            exp = state.experiments[event.exp]
            if event.verdict == "kept":
                return replace(state, incumbent=exp.config, incumbent_exp=exp.exp,
                               incumbent_values=tuple(state.values_of(exp.config)),
                               improvements=state.improvements + (state.iterations,))
            return state
        if isinstance(event, PolicyUpdated):
            return replace(self, policy_version=event.version)
        if isinstance(event, Stopped):
            return replace(self, stopped=event)
        if isinstance(event, Resumed):
            return replace(self, stopped=None)
        raise TypeError(f"not an event: {event!r}")

    def _update(self, exp_id: int, **changes: Any) -> CampaignState:
        if not 0 <= exp_id < len(self.experiments):
            raise ValueError(f"event for unknown experiment {exp_id}")
        updated = replace(self.experiments[exp_id], **changes)
        return replace(self, experiments=self.experiments[:exp_id] + (updated,) + self.experiments[exp_id + 1:])

    # ---- what everyone reads ------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return bool(self.start)

    @property
    def calibrated(self) -> bool:
        return self.calibrated_sigma is not None

    @cached_property
    def sigma(self) -> float | None:
        """Seed noise of one measurement: the pooled within-configuration standard deviation of every repeated
        measurement (calibration, confirmations, re-measurements), so it sharpens as the campaign repeats runs;
        the calibration's own estimate until the repeats say something (or when they are all identical)."""
        if self.calibrated_sigma is None:
            return None
        squares, dof = 0.0, 0
        for runs in self._repeat_groups():
            if len(runs) > 1:
                mean = sum(runs) / len(runs)
                squares += sum((x - mean) ** 2 for x in runs)
                dof += len(runs) - 1
        if dof >= 2 and squares > 0:
            return math.sqrt(squares / dof)
        return self.calibrated_sigma

    def _repeat_groups(self) -> list[list[float]]:
        """Measurements grouped by configuration, and by machine regime when the machine changed."""
        if not self.regime_starts:
            return list(self.measured.values())
        groups: dict[tuple[int, Config], list[float]] = {}
        for e in self.experiments:
            if e.outcome == "scored" and e.value is not None:
                groups.setdefault((self.regime_of(e.exp), e.config), []).append(e.value)
        return list(groups.values())

    def regime_of(self, exp: int) -> int:
        """0 before the first Rebased, then 1, 2, ...: measurements are comparable within a regime only."""
        return sum(start <= exp for start in self.regime_starts)

    @property
    def incumbent_value(self) -> float | None:
        return statistics.fmean(self.incumbent_values) if self.incumbent_values else None

    @cached_property
    def iterations(self) -> int:
        """Runs spent after calibration (edits, confirmations, re-measurements): the budget every agent shares."""
        return sum(e.kind != "calibration" for e in self.experiments)

    @cached_property
    def measurement_counts(self) -> dict[Config, int]:
        counts: dict[Config, int] = {}
        for e in self.experiments:
            counts[e.config] = counts.get(e.config, 0) + 1
        return counts

    @cached_property
    def observations(self) -> tuple[tuple[Config, float | None], ...]:
        """(config, measured value or None for a crash) of every finished run, oldest first."""
        return tuple((e.config, e.value if e.outcome == "scored" else None)
                     for e in self.experiments if e.outcome in ("scored", "crashed"))

    @cached_property
    def edits(self) -> tuple[Experiment, ...]:
        return tuple(e for e in self.experiments if e.kind == "edit")

    @cached_property
    def measured(self) -> dict[Config, list[float]]:
        """Every scored measurement of each configuration, oldest first."""
        out: dict[Config, list[float]] = {}
        for e in self.experiments:
            if e.outcome == "scored" and e.value is not None:
                out.setdefault(e.config, []).append(e.value)
        return out

    def values_of(self, config: Config) -> list[float]:
        """Every measurement of `config`; once the machine changed, only those under the current conditions (if any)."""
        if not self.regime_starts:
            return list(self.measured.get(config, ()))
        start = self.regime_starts[-1]
        current = [e.value for e in self.experiments[start:]
                   if e.config == config and e.outcome == "scored" and e.value is not None]
        return current or list(self.measured.get(config, ()))

    def measurement_seed(self, exp_id: int) -> tuple[int, ...]:
        """The seed of run `exp_id`: campaign seed, configuration, how many earlier runs it had. Every agent on a
        seed draws the same noise for the same measurement (paired comparisons), and a re-run after a kill its own."""
        config = self.experiments[exp_id].config
        return (self.seed, *config, sum(x.config == config for x in self.experiments[:exp_id]))

    def runs_of(self, exp_id: int) -> list[float]:
        """The measurements that judge a candidate: every measurement of its configuration so far (its own,
        its confirmations', and those of earlier proposals of the same configuration): a mean, never a best draw."""
        return self.values_of(self.experiments[exp_id].config)

    def confirmations_finished(self, exp_id: int) -> int:
        return sum(1 for c in self.experiments[exp_id + 1:]
                   if c.kind == "confirm" and c.parent == exp_id and c.outcome != "pending")

    def awaiting_confirmation(self) -> Experiment | None:
        """The oldest candidate judged 'confirm' whose confirmation run has not been proposed yet."""
        confirmed = {c.parent for c in self.experiments if c.kind == "confirm"}
        return next((e for e in self.edits if e.verdict == "confirm" and e.exp not in confirmed), None)

    @property
    def crash_fraction(self) -> float:
        runs = [e for e in self.experiments if e.kind == "edit" and e.outcome != "pending"]
        return sum(e.failed for e in runs) / len(runs) if runs else 0.0

    @property
    def iterations_since_improvement(self) -> int:
        return self.iterations - (self.improvements[-1] if self.improvements else 0)

    def incumbent_gap(self, value: float) -> float:
        """How much better `value` is than the incumbent, in sigma (inf when sigma is 0 and it is better)."""
        inc = self.incumbent_value
        assert inc is not None and self.sigma is not None
        if self.sigma > 0:
            return (inc - value) / self.sigma
        return math.copysign(math.inf, inc - value) if inc != value else 0.0


def fold(events: Iterable[Event], state: CampaignState | None = None) -> CampaignState:
    state = state or CampaignState()
    for event in events:
        state = state.apply(event)
    return state
