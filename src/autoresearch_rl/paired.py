"""Paired comparisons of two agents over the same seeds: wins/losses/ties, the exact sign test, a bootstrap CI.

Agents are compared seed by seed (same landscape, start and noise stream), on a score where lower
is better (normalised true regret). A tie is a difference within `tol`; ties are left out of the
sign test (the usual convention). The CI is a percentile bootstrap of the median paired difference
(a - b: negative means a is better).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial sign test p-value for `wins` successes in `wins + losses` fair trials."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def bootstrap_median_ci(diffs: Sequence[float], seed: int = 0, resamples: int = 4000,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the median of `diffs`."""
    x = np.asarray(diffs, dtype=np.float64)
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    medians = np.median(x[rng.integers(0, x.size, (resamples, x.size))], axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(medians, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


@dataclass(frozen=True)
class PairedResult:
    wins: int  # seeds where a is lower (better) than b
    losses: int
    ties: int
    p_sign: float
    median_diff: float  # median of a - b
    ci95_median_diff: tuple[float, float]

    def to_json(self) -> dict:
        out = asdict(self)
        out["ci95_median_diff"] = list(self.ci95_median_diff)
        return out


def compare(a: Sequence[float], b: Sequence[float], tol: float = 1e-9, seed: int = 0) -> PairedResult:
    if len(a) != len(b):
        raise ValueError(f"paired samples must have equal length, got {len(a)} and {len(b)}")
    diffs = [float(x) - float(y) for x, y in zip(a, b)]
    wins = sum(d < -tol for d in diffs)
    losses = sum(d > tol for d in diffs)
    ties = len(diffs) - wins - losses
    return PairedResult(wins, losses, ties, sign_test(wins, losses),
                        float(np.median(diffs)) if diffs else math.nan, bootstrap_median_ci(diffs, seed))
