"""Self-evaluation of runs in flight: learning-curve fits, the early-abort rule and its calibration."""

from autoresearch_rl.selfeval.abort import AbortAssessment, AbortConfig, AbortSpec, assess, budget_fraction, next_check
from autoresearch_rl.selfeval.calibration import AbortCalibrator, FalseAbortRate, wilson_upper
from autoresearch_rl.selfeval.curves import PowerLawFit, compact_curve, fit_power_law
from autoresearch_rl.selfeval.monitor import CurveMonitor

__all__ = [
    "AbortAssessment",
    "AbortCalibrator",
    "AbortConfig",
    "AbortSpec",
    "CurveMonitor",
    "FalseAbortRate",
    "PowerLawFit",
    "assess",
    "budget_fraction",
    "compact_curve",
    "fit_power_law",
    "next_check",
    "wilson_upper",
]
