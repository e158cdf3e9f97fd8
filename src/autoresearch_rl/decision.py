"""Noise-aware decisions: the seed noise from calibration, the keep rule and the reward.

val_bpb is noisy: the same train.py with another seed scores differently (about 0.008 bpb on
cpu-tiny, 5-7e-4 on the H100 reference). So a candidate becomes the incumbent only when it beats
it by more than a margin of `margin_sigmas` seed standard deviations, and an apparent win that is
not overwhelming (< `confirm_below_sigmas`) is run again with another seed first; the mean of both
runs must still clear the margin. The reference protocol ("keep if strictly lower") is available
as `KeepRule(strict=True)` for the greedy baseline; it keeps pure seed luck.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class KeepRule:
    """When a scored candidate replaces the incumbent."""

    margin_sigmas: float = 2.0  # required improvement, in seed standard deviations
    confirm_below_sigmas: float = 4.0  # wins smaller than this are re-run with another seed before keeping
    strict: bool = False  # the reference protocol: keep if strictly lower, no margin, no confirmation

    def __post_init__(self) -> None:
        if self.margin_sigmas < 0 or self.confirm_below_sigmas < 0:
            raise ValueError("keep margins must be non-negative")


@dataclass(frozen=True)
class RewardConfig:
    """r = clip((incumbent - candidate) / sigma, -clip, clip); failures get `failure_penalty`."""

    clip: float = 5.0  # bound on the reward of a scored candidate, in sigmas
    failure_penalty: float = -5.0  # INVALID, INVALID_EDIT, CRASHED, TIMED_OUT, NAN, ...


@dataclass(frozen=True)
class NoiseConfig:
    """How the seed noise is measured at the start of a campaign."""

    calibration_seeds: int = 3  # unmodified baseline runs with distinct seeds
    min_sigma_fraction: float = 0.002  # floor on sigma relative to the baseline (3 runs can agree by luck)

    def __post_init__(self) -> None:
        if self.calibration_seeds < 2:
            raise ValueError("calibration needs at least 2 seeds to measure noise")


class Verdict(str, Enum):
    KEEP = "keep"
    DISCARD = "discard"
    CONFIRM = "confirm"  # run it again with another seed, then decide on the mean


def noise_sigma(scores: Sequence[float], config: NoiseConfig = NoiseConfig()) -> float:
    """Seed standard deviation of the calibration runs (sample std), floored."""
    if len(scores) < 2:
        raise ValueError("need at least two calibration scores")
    floor = config.min_sigma_fraction * statistics.fmean(scores)
    return max(statistics.stdev(scores), floor)


def judge(incumbent: float, runs: Sequence[float], sigma: float, rule: KeepRule) -> Verdict:
    """Keep, discard, or ask for a confirmation run, given the candidate's scores so far."""
    score = statistics.fmean(runs)
    if rule.strict:
        return Verdict.KEEP if score < incumbent else Verdict.DISCARD
    gain = incumbent - score
    if gain <= rule.margin_sigmas * sigma:
        return Verdict.DISCARD
    if len(runs) == 1 and gain < rule.confirm_below_sigmas * sigma:
        return Verdict.CONFIRM
    return Verdict.KEEP


def reward(incumbent: float, score: float | None, sigma: float, config: RewardConfig = RewardConfig()) -> float:
    """Improvement over the incumbent in units of seed noise, clipped; a failure (score None) is penalised."""
    if score is None or not math.isfinite(score):
        return config.failure_penalty
    return max(-config.clip, min(config.clip, (incumbent - score) / sigma))
