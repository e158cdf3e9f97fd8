"""`Decider`: the keep rule. Kept only when the candidate's mean clears the incumbent's by the margin.

`NoiseAwareDecider` puts the campaign keep rule (`decision.judge`: 2 sigma, a confirmation run
below 4 sigma; `strict` for the reference protocol) behind the protocol. A configuration proposed
again (a challenger) is judged on all its runs, but a small win still needs its own confirmation run:
its earlier runs were picked for looking good. The incumbent's value is
the mean of all its measurements. The reward is the candidate's improvement over the incumbent it
was derived from, in sigma, clipped; failures get the failure penalty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from autoresearch_rl.core.state import CampaignState
from autoresearch_rl.decision import KeepRule, RewardConfig, Verdict, judge


@dataclass(frozen=True)
class Decision:
    verdict: str  # kept | discarded | confirm | failed | measured
    margin: float  # required improvement, value units
    reward: float


class Decider(Protocol):
    def decide(self, state: CampaignState, exp_id: int) -> Decision: ...


@dataclass(frozen=True)
class NoiseAwareDecider:
    rule: KeepRule = field(default_factory=KeepRule)
    reward_config: RewardConfig = field(default_factory=RewardConfig)

    def reward(self, reference: float, value: float | None, sigma: float) -> float:
        c = self.reward_config
        if value is None or not math.isfinite(value):
            return c.failure_penalty
        if sigma <= 0:
            return math.copysign(c.clip, reference - value) if value != reference else 0.0
        return max(-c.clip, min(c.clip, (reference - value) / sigma))

    def decide(self, state: CampaignState, exp_id: int) -> Decision:
        e = state.experiments[exp_id]
        sigma = state.sigma or 0.0
        incumbent = state.incumbent_value
        assert incumbent is not None, "decisions come after calibration"
        margin = 0.0 if self.rule.strict else self.rule.margin_sigmas * sigma
        reference = e.incumbent_value if e.incumbent_value is not None else incumbent
        if e.kind == "remeasure":
            return Decision("measured", margin, 0.0)  # evidence, not an edit: nothing to reward
        if e.failed:
            return Decision("failed", margin, self.reward(reference, e.value if e.outcome == "aborted" else None, sigma))
        runs = state.runs_of(exp_id)
        verdict = judge(incumbent, runs, sigma, self.rule)
        if (verdict is Verdict.KEEP and len(runs) > 1 and not self.rule.strict and sigma > 0
                and not state.confirmations_finished(exp_id)
                and incumbent - sum(runs) / len(runs) < self.rule.confirm_below_sigmas * sigma):
            # a configuration proposed again after it looked good: its earlier runs were selected for their
            # luck, so a small win needs a fresh confirmation run, as a new candidate's does
            verdict = Verdict.CONFIRM
        if verdict is Verdict.CONFIRM and (sigma <= 0 or state.confirmations_finished(exp_id)):
            verdict = Verdict.KEEP if sigma <= 0 else Verdict.DISCARD  # its confirmation failed: it does not reproduce
        score = sum(runs) / len(runs)
        name = {Verdict.KEEP: "kept", Verdict.DISCARD: "discarded", Verdict.CONFIRM: "confirm"}[verdict]
        return Decision(name, margin, self.reward(reference, score, sigma))
