"""What early abort did for a campaign, from the ledger alone: aborts, shadow outcomes, device time saved."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Iterable

from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger import ExperimentRow
from autoresearch_rl.selfeval.abort import MIN_MEASURED, AbortConfig, AbortSpec, measured_errors, robust_spread
from autoresearch_rl.selfeval.calibration import AbortCalibrator, wilson_upper


def abort_outcomes(rows: Iterable[ExperimentRow]) -> list[tuple[bool, bool]]:
    """(would the rule have aborted it, was it kept) for every decided shadow run: never killed, fully scored."""
    return [("would_abort_at_fraction" in r.summary, r.status is Status.KEPT) for r in rows
            if r.role == "candidate" and r.summary.get("abort_shadow") and r.reward is not None]


def _scored_checks(rows: Iterable[ExperimentRow]) -> list[tuple[list, float]]:
    """(the checks a run recorded, the val_bpb it scored), for the scored runs that recorded checks."""
    return [(r.summary["abort_checks"], r.val_bpb) for r in rows
            if r.val_bpb is not None and isinstance(r.summary.get("abort_checks"), list)]


def prediction_errors(rows: Iterable[ExperimentRow], config: AbortConfig) -> tuple[tuple[float, ...], ...]:
    """The measured rule's data (abort.py, rule 3): per check, scored val_bpb - what the curves foresaw, over
    the scored runs that recorded their checks (aborted runs have no score and are not among them)."""
    return measured_errors(_scored_checks(rows), config.warmup_fraction, config.check_every_fraction)


def abort_spec(config: AbortConfig, *, curve: Sequence[Sequence[float]], final_loss: float, incumbent_value: float,
               margin: float, budget_s: float, seed: int, shadow_outcomes: Sequence[tuple[bool, bool]],
               scored_checks: Sequence[tuple[list, float]]) -> AbortSpec:
    """How a worker judges the run with this seed against the incumbent's curve, given the campaign's evidence:
    the shadow runs' (would abort, kept) outcomes calibrate z, the scored runs' checks give the measured rule."""
    calibrator = AbortCalibrator.from_config(config, shadow_outcomes)
    return config.spec(incumbent_curve=curve, incumbent_final_loss=final_loss, incumbent_val_bpb=incumbent_value,
                       margin=margin, budget_s=budget_s, threshold=calibrator.threshold(config.z),
                       shadow=calibrator.should_shadow(seed),
                       prediction_errors=measured_errors(scored_checks, config.warmup_fraction,
                                                         config.check_every_fraction))


def prediction_error_lines(rows: Iterable[ExperimentRow], config: AbortConfig = AbortConfig()) -> list[str]:
    """A markdown table of the errors the measured rule judges by: how far each check's prediction landed."""
    errors = prediction_errors(rows, config)
    if not any(errors):
        return []
    lines = ["", f"prediction errors of the abort rule (scored val_bpb - curve prediction; the measured rule "
                 f"applies from {MIN_MEASURED} runs at a check)", "",
             "| check | runs | median | robust sd |", "|---|---|---|---|"]
    for k, check in enumerate(errors):
        if check:
            median, spread = robust_spread(check)
            fraction = config.warmup_fraction + k * config.check_every_fraction
            lines.append(f"| {fraction:.0%} | {len(check)} | {median:+.4f} | {spread:.4f} |")
    return lines


@dataclass(frozen=True)
class AbortAccount:
    aborted: int
    shadow_runs: int
    shadow_would_abort: int
    false_aborts: int  # shadow runs the rule would have aborted that were kept
    false_abort_upper: float | None  # 90% Wilson upper bound on the false-abort rate
    saved_hours: float  # device time not spent: a full candidate's median duration minus each aborted run's

    @property
    def false_abort_rate(self) -> float | None:
        return self.false_aborts / self.shadow_would_abort if self.shadow_would_abort else None

    def line(self) -> str:
        rate = "-" if self.false_abort_rate is None else f"{100 * self.false_abort_rate:.0f}%"
        upper = "" if self.false_abort_upper is None else f" (90% upper bound {100 * self.false_abort_upper:.0f}%)"
        return (f"early abort: {self.aborted} aborted, {self.saved_hours:.3f} device-hours saved | shadow runs "
                f"{self.shadow_runs}, rule fired on {self.shadow_would_abort}, false aborts {self.false_aborts} "
                f"= {rate}{upper}")

    def to_json(self) -> dict[str, object]:
        return {"aborted": self.aborted, "shadow_runs": self.shadow_runs, "shadow_would_abort": self.shadow_would_abort,
                "false_aborts": self.false_aborts, "false_abort_rate": self.false_abort_rate,
                "false_abort_upper": self.false_abort_upper, "saved_hours": round(self.saved_hours, 4)}


def abort_account(rows: Iterable[ExperimentRow]) -> AbortAccount:
    rows = list(rows)
    outcomes = abort_outcomes(rows)
    fired = [kept for would_abort, kept in outcomes if would_abort]
    false_aborts = sum(fired)
    full = [r.timings.total for r in rows if r.status.scored and r.timings.total > 0]  # what a full run costs
    aborted = [r for r in rows if r.status is Status.ABORTED]
    typical = statistics.median(full) if full else 0.0
    saved = sum(max(0.0, typical - r.timings.total) for r in aborted) / 3600.0
    upper = wilson_upper(false_aborts, len(fired), 0.9) if fired else None
    return AbortAccount(len(aborted), len(outcomes), len(fired), false_aborts, upper, saved)
