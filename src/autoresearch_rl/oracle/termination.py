"""The termination oracle: asks its stop rules in order after every experiment; the first that fires ends the loop."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autoresearch_rl.errors import UserError
from autoresearch_rl.oracle.audit import AgentBelowRandom
from autoresearch_rl.oracle.convergence import Convergence
from autoresearch_rl.oracle.rules import (
    CampaignProgress,
    MaxDeviceHours,
    MaxHours,
    MaxIterations,
    StopDecision,
    StopFile,
    StopRule,
)


@dataclass(frozen=True)
class OracleConfig:
    """When a campaign stops: optional budgets, and the convergence test (always on)."""

    max_iters: int | None = None
    """Stop after this many iterations; None for no limit."""
    max_hours: float | None = None
    """Stop after this many wall-clock hours (over all sessions); None for no limit."""
    max_device_hours: float | None = None
    """Stop after experiments have used this many device hours; None for no limit."""
    window: int = 50
    """Trailing window (iterations) of the convergence test."""
    improvement_probability: float = 0.1
    """Stop when P(>= 1 improvement in the next window) falls below this; 0 disables convergence."""
    entropy_slack: float = 0.25
    """'Near its floor': entropy_ratio <= floor + slack * (1 - floor)."""
    prior_a: float = 0.5
    """Beta prior on the per-iteration improvement probability (Jeffreys: 0.5, 0.5)."""
    prior_b: float = 0.5
    """Second parameter of that Beta prior."""
    audit_min_random: int = 20
    """Random audit proposals needed before the agent-below-random rule may fire."""
    audit_confidence: float = 0.95
    """Stop when P(agent improves more often than random) < 1 - this; 0 disables the rule."""

    def __post_init__(self) -> None:
        # Values come from the user (CLI flags, a config file): say which one is wrong and what is allowed.
        if self.max_iters is not None and self.max_iters < 1:
            raise UserError(f"max_iters must be >= 1 (got {self.max_iters}); leave it unset for no limit")
        for field in ("max_hours", "max_device_hours"):
            value = getattr(self, field)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise UserError(f"{field} must be a positive number of hours (got {value}); leave it unset for no limit")
        if self.window < 1:
            raise UserError(f"window must be >= 1 iteration (got {self.window})")
        if not 0.0 <= self.improvement_probability <= 1.0:
            raise UserError(f"improvement_probability must be in [0, 1] (got {self.improvement_probability})")
        if not 0.0 <= self.entropy_slack <= 1.0:
            raise UserError(f"entropy_slack must be in [0, 1] (got {self.entropy_slack})")
        if not (self.prior_a > 0 and self.prior_b > 0 and math.isfinite(self.prior_a + self.prior_b)):
            raise UserError(f"prior_a and prior_b must be positive (got {self.prior_a}, {self.prior_b})")


class TerminationOracle:
    """Stop rules asked in order; order matters only for which reason is recorded when several fire at once."""

    def __init__(self, rules: Sequence[StopRule]) -> None:
        self.rules = tuple(rules)

    @classmethod
    def from_config(cls, config: OracleConfig, stop_file: Path | None = None) -> TerminationOracle:
        """Rules in the order: stop file (the user's explicit ask), budgets, convergence (a judgement)."""
        rules: list[StopRule] = []
        if stop_file is not None:
            rules.append(StopFile(stop_file))
        if config.max_iters is not None:
            rules.append(MaxIterations(config.max_iters))
        if config.max_hours is not None:
            rules.append(MaxHours(config.max_hours))
        if config.max_device_hours is not None:
            rules.append(MaxDeviceHours(config.max_device_hours))
        rules.append(Convergence(config.window, config.improvement_probability, config.entropy_slack,
                                 config.prior_a, config.prior_b))
        if config.audit_confidence > 0:
            rules.append(AgentBelowRandom(config.audit_min_random, config.audit_confidence))
        return cls(rules)

    def check(self, progress: CampaignProgress) -> StopDecision | None:
        """The first rule that fires, or None to run another experiment."""
        for rule in self.rules:
            decision = rule.check(progress)
            if decision is not None:
                return decision
        return None
