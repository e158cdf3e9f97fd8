"""The runner's live view of a run: follow train.py's progress lines and apply the abort rule at each check.

`CurveMonitor` is the `monitor` callable of `run_with_deadline`: called from its poll loop, it reads
the lines appended to the log since the last call (cheap; the candidate is not touched) and, when
the run crosses the next check fraction, runs `assess` (two fits: a few milliseconds). It returns
the reason to stop the run, or None; a shadow monitor never asks to stop and only remembers where it
would have. Every check's prediction from the curves is kept (`abort_checks`): once the run is scored,
they are what the measured rule (abort.py, rule 3) learns its prediction errors from.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from autoresearch_rl.logparse import ProgressPoint, ProgressTail
from autoresearch_rl.selfeval.abort import AbortAssessment, AbortSpec, assess, budget_fraction, next_check


class CurveMonitor:
    """Progress points of one run so far, and the first assessment that said abort (if any)."""

    def __init__(self, spec: AbortSpec, log_path: Path, offset: int = 0) -> None:
        self.spec = spec
        self.points: list[ProgressPoint] = []
        self.fired: AbortAssessment | None = None
        self.checks = 0  # assessments made
        self.predictions: list[tuple[float, float, float]] = []  # (fraction, curve_val_bpb, curve_sd) of each check
        self._tail = ProgressTail(log_path, offset=offset)
        self._next_check = spec.warmup_fraction

    def __call__(self) -> str | None:
        new = self._tail.read_new()
        if not new or (self.fired is not None and not self.spec.shadow):
            return None
        self.points += new
        fraction = budget_fraction(self.points[-1], self.spec.budget_s)
        if fraction < self._next_check:
            return None
        self._next_check = next_check(self.spec, fraction)
        self.checks += 1
        verdict = assess(self.spec, self.points)
        if math.isfinite(verdict.curve_val_bpb):
            self.predictions.append((round(verdict.fraction, 4), verdict.curve_val_bpb, verdict.curve_sd))
        if not verdict.abort or self.fired is not None:  # a shadow goes on checking after it would have stopped
            return None
        self.fired = verdict
        return None if self.spec.shadow else verdict.reason

    def summary(self) -> dict[str, Any]:
        """What the record keeps of the rule's verdict: why it aborted, or (shadow) where it would have."""
        checks = {"abort_checks": [list(p) for p in self.predictions]} if self.predictions else {}
        v = self.fired
        if v is None:
            return checks
        if self.spec.shadow:
            return {**checks, "would_abort_at_fraction": round(v.fraction, 4),
                    "would_abort_predicted_val_bpb": v.predicted_val_bpb, "would_abort_reason": v.reason}
        return {**checks, "aborted_at_fraction": round(v.fraction, 4), "predicted_final_loss": v.predicted_final_loss,
                "predicted_val_bpb": v.predicted_val_bpb, "abort_reason": v.reason}
