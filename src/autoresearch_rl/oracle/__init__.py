"""When the campaign stops, and why: budgets, a stop file, and a Bayesian convergence test."""

from __future__ import annotations

from autoresearch_rl.oracle.audit import AgentBelowRandom
from autoresearch_rl.oracle.convergence import Convergence, improvement_probability
from autoresearch_rl.oracle.rules import (
    CampaignProgress,
    MaxDeviceHours,
    MaxHours,
    MaxIterations,
    StopDecision,
    StopFile,
    StopRule,
    user_interrupt,
)
from autoresearch_rl.oracle.termination import OracleConfig, TerminationOracle

__all__ = [
    "AgentBelowRandom",
    "CampaignProgress",
    "Convergence",
    "MaxDeviceHours",
    "MaxHours",
    "MaxIterations",
    "OracleConfig",
    "StopDecision",
    "StopFile",
    "StopRule",
    "TerminationOracle",
    "improvement_probability",
    "user_interrupt",
]
