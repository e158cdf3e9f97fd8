"""Calibration of the abort threshold: measure false aborts on shadow runs and adapt z to keep them rare.

The abort rule's sigmas come from a model (a power law, Gaussian noise); whether its aborts are
right is measured, not assumed. A shadow run (chosen by `should_shadow` with probability
`shadow_probability`) is never killed: when the rule fires on it, it still finishes and the
controller learns whether it would have been kept. Over the shadow runs where the rule fired,

    false-abort rate = would have been kept / would have been aborted,

with a one-sided Wilson upper confidence bound at `confidence`. `threshold(base)` replays those
outcomes in order, starting from z = base; after each one, with the bound over the outcomes so far:
  * a false abort, and the bound exceeds max_false_abort_rate: loosen, z += loosen_step;
  * a correct abort, and the bound is at most max_false_abort_rate: tighten slowly, z -= tighten_step;
  * otherwise hold: the data do not yet show that aborts are rare enough (or a rare false abort
    leaves the bound below the limit).
z stays within [base - max_tighten, base + max_loosen]. Loosening happens at false aborts, not on
every outcome while the bound is high: with few outcomes the bound is wide for lack of data alone
(about 30 clean outcomes are needed at 90% for a 5% bound), and loosening on that would switch
aborting off in any campaign of realistic length. Replaying in order makes the threshold a
deterministic function of the ledger.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from autoresearch_rl.selfeval.abort import AbortConfig


@dataclass(frozen=True)
class FalseAbortRate:
    """False aborts among the shadow runs where the rule fired."""

    rate: float  # false_aborts / would_abort, 0 when the rule never fired
    false_aborts: int  # would have been aborted, and were kept
    would_abort: int  # shadow runs where the rule fired
    upper: float  # one-sided Wilson upper confidence bound of the rate (1 with no data)


def wilson_upper(successes: int, trials: int, confidence: float) -> float:
    """One-sided Wilson score upper bound of a binomial proportion."""
    if trials == 0:
        return 1.0
    z = statistics.NormalDist().inv_cdf(confidence)
    p, n = successes / trials, trials
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


@dataclass(frozen=True)
class AbortCalibrator:
    """The abort threshold adapted to shadow outcomes (module docstring)."""

    outcomes: tuple[tuple[bool, bool], ...] = ()  # (would_abort, would_have_been_kept) of each shadow run, in order
    max_false_abort_rate: float = 0.05  # bound on the false-abort rate
    shadow_probability: float = 0.2  # chance that a run is a shadow run
    confidence: float = 0.9  # of the Wilson upper bound
    loosen_step: float = 0.5  # z added at a false abort while they are not shown rare
    tighten_step: float = 0.05  # z removed at a correct abort once they are
    max_loosen: float = 3.0  # z never rises more than this above the base
    max_tighten: float = 1.0  # nor falls more than this below it

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcomes", tuple((bool(a), bool(k)) for a, k in self.outcomes))

    @classmethod
    def from_config(cls, config: AbortConfig, outcomes: Iterable[tuple[bool, bool]]) -> AbortCalibrator:
        return cls(outcomes=tuple(outcomes), max_false_abort_rate=config.max_false_abort_rate,
                   shadow_probability=config.shadow_probability)

    def false_abort_rate(self) -> FalseAbortRate:
        fired = [kept for would_abort, kept in self.outcomes if would_abort]
        false_aborts = sum(fired)
        return FalseAbortRate(rate=false_aborts / len(fired) if fired else 0.0, false_aborts=false_aborts,
                              would_abort=len(fired), upper=wilson_upper(false_aborts, len(fired), self.confidence))

    def threshold(self, base: float) -> float:
        """z for the next run: base adapted by replaying the outcomes where the rule fired."""
        z, fired, false_aborts = base, 0, 0
        for would_abort, kept in self.outcomes:
            if not would_abort:
                continue  # the rule did not fire: nothing learnt about false aborts
            fired, false_aborts = fired + 1, false_aborts + kept
            rare = wilson_upper(false_aborts, fired, self.confidence) <= self.max_false_abort_rate
            if kept and not rare:
                z += self.loosen_step
            elif not kept and rare:
                z -= self.tighten_step
            z = min(base + self.max_loosen, max(base - self.max_tighten, z))
        return z

    def should_shadow(self, seed: int) -> bool:
        """Whether the run with this seed is a shadow run: a deterministic draw, the same on every machine."""
        digest = hashlib.sha256(f"arl-abort-shadow:{seed}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64 < self.shadow_probability
