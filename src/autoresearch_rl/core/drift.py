"""`DriftMonitor`: the machine is not stationary; a wall-clock budget turns its load into score.

A run on a loaded machine trains fewer tokens in its budget and scores worse; a run after the load
lifts scores better, and would be kept as research. Throughput (tokens/s) says which: every run
records it beside its score. The monitor:

- **flags** a run whose throughput is off the machine's current speed (the incumbent's runs) by more
  than a tolerance: 10%, or `jitter_multiple` times the calibration runs' relative spread when the
  machine is jittery (a quiet one varies by 1-3%), at most 30%;
- **defers** the keep decision on a flagged candidate and has the loop re-measure the incumbent
  right after it, in the same conditions (a paired comparison);
- **rebases** when that re-measurement is off too (the machine changed, not the candidate): from the
  flagged run on, measurements are compared only with each other (`Rebased`), the incumbent is
  re-measured until it has `regime_runs` values under the new conditions, then the candidate is
  decided on those;
- **follows slow drift**: every `remeasure_every` iterations without a measurement of the incumbent,
  it is re-measured (and rebased if its throughput moved).

A candidate that is merely slower by itself (a bigger model) is flagged too; the incumbent's re-run
then shows the usual speed, nothing is rebased, and the candidate is decided with one more incumbent
measurement in hand. Without throughput (landscapes that do not report one) the monitor is inert.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from autoresearch_rl.core.events import Rebased
from autoresearch_rl.core.state import CampaignState, Experiment


@dataclass(frozen=True)
class DriftMonitor:
    min_tolerance: float = 0.10  # relative throughput change below which no run is flagged
    max_tolerance: float = 0.30  # ... and above which every run is, however jittery calibration was
    jitter_multiple: float = 5.0  # tolerance = this many relative standard deviations of calibration throughput
    remeasure_every: int = 20  # iterations without an incumbent measurement before one is due (0: never)
    regime_runs: int = 5  # incumbent measurements under new conditions before anything is compared to them
    value_z: float = 4.0  # an incumbent re-measurement this many sigma off its own mean also means a changed machine

    def __post_init__(self) -> None:
        if not 0 < self.min_tolerance <= self.max_tolerance < 1 or self.remeasure_every < 0 or self.regime_runs < 1:
            raise ValueError("drift monitor: 0 < min_tolerance <= max_tolerance < 1, remeasure_every >= 0, "
                             "regime_runs >= 1")

    def tolerance(self, state: CampaignState) -> float:
        """The relative throughput change that flags a run, from the spread of the calibration runs' throughput."""
        return self.tolerance_for([e.throughput for e in state.experiments[:state.calibration_runs * 3]
                                   if e.kind == "calibration" and e.throughput is not None])

    def tolerance_for(self, calibration_speeds: list[float]) -> float:
        speeds = [x for x in calibration_speeds if x > 0]
        if len(speeds) < 2:
            return self.min_tolerance
        mean = sum(speeds) / len(speeds)
        cv = (sum((x - mean) ** 2 for x in speeds) / (len(speeds) - 1)) ** 0.5 / mean
        return min(self.max_tolerance, max(self.min_tolerance, self.jitter_multiple * cv))

    def reference(self, state: CampaignState, before: int, config: tuple[int, ...] | None = None) -> float | None:
        """The machine's speed now: the median throughput of the incumbent's runs (or those of `config`) under the
        current conditions before run `before` (calibration, re-measurements), else the reference recorded at
        calibration or rebase."""
        config = state.incumbent if config is None else config
        start = state.regime_starts[-1] if state.regime_starts else 0
        speeds = sorted(r.throughput for r in state.experiments[start:before]
                        if r.config == config and r.outcome == "scored" and r.throughput is not None)
        return median(speeds) if speeds else state.reference_throughput

    def moved(self, state: CampaignState, e: Experiment) -> float | None:
        """Relative throughput change of an incumbent re-measurement against earlier runs of the same code: a
        re-run of an incumbent replaced meanwhile (by a faster model, say) is compared with its own speed."""
        reference = self.reference(state, e.exp, e.config)
        if reference is None or e.throughput is None or reference <= 0:
            return None
        return e.throughput / reference - 1.0

    def deviation(self, state: CampaignState, e: Experiment) -> float | None:
        """Relative throughput change of a run against the reference (None when either is unknown)."""
        reference = self.reference(state, e.exp) if state.reference_throughput is not None else None
        if reference is None or e.throughput is None or reference <= 0:
            return None
        return e.throughput / reference - 1.0

    def flagged(self, state: CampaignState, e: Experiment) -> bool:
        deviation = self.deviation(state, e)
        return deviation is not None and abs(deviation) > self.tolerance(state)

    def defers(self, state: CampaignState, exp: int) -> bool:
        """Whether the keep decision on candidate `exp` waits for a paired incumbent re-measurement."""
        e = state.experiments[exp]
        if e.kind != "edit":
            return False
        if e.verdict == "deferred" and self._regime_short(state):
            return True
        flagged = [r for r in (e, *self._confirmations(state, exp)) if r.outcome == "scored" and self.flagged(state, r)]
        return bool(flagged) and not self._paired_after(state, flagged[-1].exp)

    def owed_remeasure(self, state: CampaignState) -> tuple[int, str] | None:
        """(parent, why) of an incumbent re-measurement the loop owes now, else None."""
        if state.reference_throughput is None:
            return None
        assert state.incumbent_exp is not None
        for e in reversed(state.edits):
            if e.verdict == "deferred":
                if not self._paired_after(state, e.exp):
                    return e.exp, "paired with a flagged run"
                break
        if self._regime_short(state):
            return state.incumbent_exp, "new conditions: the incumbent is measured again"
        if self.remeasure_every and self._since_incumbent_measured(state) >= self.remeasure_every:
            return state.incumbent_exp, "periodic"
        return None

    def pending_rebase(self, state: CampaignState) -> Rebased | None:
        """The new regime, when the latest incumbent re-measurement's throughput moved beyond the tolerance.

        Idempotent: once recorded, that run's throughput is the reference and it is no longer flagged.
        """
        if state.reference_throughput is None:
            return None
        e = next((r for r in reversed(state.experiments) if r.kind == "remeasure" and r.outcome != "pending"), None)
        if e is None or e.outcome != "scored" or e.throughput is None:
            return None
        moved = self.moved(state, e) if state.reference_throughput is not None else None
        off = moved is not None and abs(moved) > self.tolerance(state)
        if not off and not self._value_moved(state, e):
            return None
        parent = state.experiments[e.parent] if e.parent is not None else None
        start = parent.exp if parent is not None and parent.verdict == "deferred" else e.exp
        why = (f"incumbent throughput {moved:+.0%} against the reference" if off
               else "incumbent score moved beyond the noise")
        return Rebased(start, e.throughput, why)

    # ---- helpers -------------------------------------------------------------------------------

    def _value_moved(self, state: CampaignState, e: Experiment) -> bool:
        """The incumbent re-measured `value_z` sigma away from its earlier measurements under these conditions
        (a slow drift the throughput alone did not show). Once rebased on it, it is the only one: no longer off."""
        start = state.regime_starts[-1] if state.regime_starts else 0
        earlier = [r.value for r in state.experiments[start:e.exp]
                   if r.config == e.config and r.outcome == "scored" and r.value is not None]
        sigma = state.sigma
        if not earlier or not sigma or e.value is None:
            return False
        mean = sum(earlier) / len(earlier)
        return abs(e.value - mean) > self.value_z * sigma * (1 + 1 / len(earlier)) ** 0.5

    @staticmethod
    def _confirmations(state: CampaignState, exp: int) -> list[Experiment]:
        return [c for c in state.experiments[exp + 1:] if c.kind == "confirm" and c.parent == exp]

    @staticmethod
    def _paired_after(state: CampaignState, exp: int) -> bool:
        """An incumbent re-measurement ran (or failed) after run `exp`."""
        return any(r.kind == "remeasure" and r.config == state.incumbent and r.outcome != "pending"
                   for r in state.experiments[exp + 1:])

    def _regime_short(self, state: CampaignState) -> bool:
        """The machine changed and the incumbent has fewer than `regime_runs` measurements since."""
        if not state.regime_starts:
            return False
        start = state.regime_starts[-1]
        runs = sum(1 for r in state.experiments[start:] if r.config == state.incumbent and r.outcome == "scored")
        return runs < self.regime_runs

    @staticmethod
    def _since_incumbent_measured(state: CampaignState) -> int:
        count = 0
        for r in reversed(state.experiments):
            if r.config == state.incumbent and r.outcome == "scored":
                return count
            count += r.kind != "calibration"
        return count
