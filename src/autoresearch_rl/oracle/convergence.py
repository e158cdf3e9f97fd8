"""Convergence: stop when another window of experiments is unlikely to beat the incumbent.

Estimator. Each iteration since the last significant improvement (a kept candidate that beat the
incumbent by more than the noise margin) is a Bernoulli trial whose unknown success probability
is p ~ Beta(a, b), Jeffreys (a = b = 1/2) by default. After n trials without a success the
posterior is Beta(a, b + n), and the posterior-predictive probability of at least one success in
the next W trials is

    P(n, W) = 1 - B(a, b + n + W) / B(a, b + n),

computed in log space so that nothing overflows: as the telescoped product
prod_{k<W} (b+n+k) / (a+b+n+k) summed with log1p (exact for any n), or with `math.lgamma` for
windows too long to sum (> 10,000). n counts iterations since the last significant improvement, or
since iteration 0 when there was none.

`Convergence` fires only when all three hold:
  1. iterations >= W and no significant improvement within the last W iterations;
  2. P(n, W) < the threshold (0.1 by default);
  3. if the proposer has a policy, its entropy ratio is near its floor:
     ratio <= floor + slack * (1 - floor); the agent has stopped exploring, so waiting longer
     buys mostly exploitation of an incumbent it no longer improves. Proposers without a policy
     (random, greedy, TPE) skip this condition and the reason says so.

What this does NOT guarantee. The improvement process is not stationary: an agent that adapts
(or a schedule that widens its edits) can make p rise after a long drought, which the model,
treating trials as exchangeable draws of one p, cannot foresee. P(n, W) is a belief under that
model, not a frequency; and "significant" rests on a noise margin estimated from a few seeds, so
noise can hide a real improvement or fake one. With the defaults (W = 50, threshold 0.1) the
test needs 213 dry iterations, so condition 2, not condition 1, usually decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoresearch_rl.oracle.rules import CampaignProgress, StopDecision


_TERMWISE_MAX_WINDOW = 10_000  # above this the O(window) sum gets slow and lgamma takes over


def _log_beta(x: float, y: float) -> float:
    return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)


def _log_no_improvement(n: int, window: int, a: float, b: float) -> float:
    """log B(a, b + n + W) / B(a, b + n): log P(no success in the next W trials | Beta(a, b + n))."""
    if window <= _TERMWISE_MAX_WINDOW:
        # The same ratio as a telescoped product, prod_k (b+n+k) / (a+b+n+k): no cancellation however
        # large n is, where the lgamma difference loses digits (relative error ~1e-3 at n = 1e7).
        return -math.fsum(math.log1p(a / (b + n + k)) for k in range(window))
    return _log_beta(a, b + n + window) - _log_beta(a, b + n)


def improvement_probability(trials_since_improvement: int, window: int, a: float = 0.5, b: float = 0.5) -> float:
    """P(at least one improvement in the next `window` trials | none in `trials_since_improvement`), Beta(a, b) prior."""
    if trials_since_improvement < 0 or window < 0:
        raise ValueError(f"counts must be >= 0, got n={trials_since_improvement}, window={window}")
    if a <= 0 or b <= 0:
        raise ValueError(f"Beta prior parameters must be > 0, got a={a}, b={b}")
    log_none = _log_no_improvement(trials_since_improvement, window, a, b)
    return max(0.0, -math.expm1(log_none))  # 1 - exp(x) without cancellation when the probability is small


@dataclass(frozen=True)
class Convergence:
    """Stops when the posterior chance of an improvement in the next window is small (see the module docstring)."""

    window: int = 50
    """Trailing window (iterations) of the test, and the horizon of the predicted improvement."""
    improvement_probability: float = 0.1
    """Stop when P(>= 1 improvement in the next window) falls below this."""
    entropy_slack: float = 0.25
    """'Near its floor': entropy_ratio <= floor + slack * (1 - floor)."""
    prior_a: float = 0.5
    """Beta prior on the per-iteration improvement probability: successes."""
    prior_b: float = 0.5
    """Beta prior on the per-iteration improvement probability: failures."""
    name = "converged"

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1 iteration, got {self.window}")

    def check(self, progress: CampaignProgress) -> StopDecision | None:
        n = progress.iterations_since_improvement
        if progress.iterations < self.window or n < self.window:
            return None
        p = improvement_probability(n, self.window, self.prior_a, self.prior_b)
        if not p < self.improvement_probability:
            return None
        floor = progress.entropy_floor_ratio or 0.0
        entropy_limit = floor + self.entropy_slack * (1.0 - floor)
        if progress.entropy_ratio is None:
            entropy_text = "policy entropy not checked (the proposer has no policy)"
        elif progress.entropy_ratio <= entropy_limit:
            entropy_text = (f"policy entropy ratio {progress.entropy_ratio:.2f} near its floor {floor:.2f} "
                            f"(<= {entropy_limit:.2f})")
        else:
            return None  # still exploring: the drought may be the search's, not the problem's
        last = progress.last_improvement
        since = f"last at iteration {last}" if last is not None else "none since calibration"
        reason = (f"converged: no improvement beyond the noise margin in the last {n} iterations ({since}); "
                  f"P(improvement in next {self.window}) = {p:.3g} < {self.improvement_probability:g}; {entropy_text}")
        details: dict[str, float | int | str | None] = {
            "iterations": progress.iterations,
            "elapsed_hours": progress.elapsed_hours,
            "device_hours": progress.device_hours,
            "improvements": len(progress.improvement_iterations),
            "last_improvement_iteration": last,
            "iterations_since_improvement": n,
            "window": self.window,
            "improvement_probability": p,
            "threshold": self.improvement_probability,
            "prior_a": self.prior_a,
            "prior_b": self.prior_b,
            "entropy_ratio": progress.entropy_ratio,
            "entropy_floor_ratio": progress.entropy_floor_ratio,
            "entropy_limit": entropy_limit if progress.entropy_ratio is not None else None,
        }
        return StopDecision(self.name, reason, details)
