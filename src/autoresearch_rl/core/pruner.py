"""`Pruner`: early abort. What a worker judges a candidate's run by while it trains.

Most candidates lose; a clearly losing one need not use its whole budget. The judging happens in
the worker, on the run's loss curve as it is printed (`selfeval/abort.py`, in the runner); the
pruner's job is to say, from the campaign's state, what the run is judged against: the incumbent's
curve and value, the keep margin, the calibrated threshold and the measured prediction errors. A
run the pruner gives no rule to trains its full budget (a landscape has no curves).

`CurvePruner` is `arl run`'s early-abort rule over the events: it reads the evidence from the runs'
records in the events (`details["summary"]`: curve, final train loss, the checks each run recorded,
whether it was a shadow run) and builds the spec with `selfeval/accounting.abort_spec`, the rule the
report's abort tables (`selfeval/accounting.py`) account for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from autoresearch_rl.core.state import CampaignState, Experiment
from autoresearch_rl.decision import KeepRule
from autoresearch_rl.loop_config import derive_seed
from autoresearch_rl.selfeval.abort import AbortConfig
from autoresearch_rl.selfeval.accounting import abort_spec

UNDECIDED = (None, "confirm", "deferred")


def summary(e: Experiment) -> dict[str, Any]:
    """What the run printed about its training (the runner's summary in the run's record; empty in memory)."""
    return e.details.get("summary", {})


class Pruner(Protocol):
    def rule(self, state: CampaignState, exp: int, seed: tuple[int, ...]) -> Any | None:
        """What the worker judges run `exp` (measured with `seed`) by; None: it trains its full budget."""
        ...


@dataclass(frozen=True)
class CurvePruner:
    budget_s: float  # the training budget the curves are fractions of
    config: AbortConfig = field(default_factory=AbortConfig)
    keep: KeepRule = field(default_factory=KeepRule)  # the decider's rule: a run is doomed if it cannot clear its margin

    def rule(self, state: CampaignState, exp: int, seed: tuple[int, ...]) -> Any | None:
        if not self.config.enabled or state.experiments[exp].kind != "edit" or state.incumbent_exp is None:
            return None  # calibration, confirmations and re-measurements are evidence: they always finish
        incumbent = summary(state.experiments[state.incumbent_exp])
        curve, final = incumbent.get("curve"), incumbent.get("final_train_loss")
        value = state.incumbent_value
        if not curve or not isinstance(final, (int, float)) or not math.isfinite(final) or value is None:
            return None
        runs = state.experiments
        shadows = [("would_abort_at_fraction" in summary(e), e.verdict == "kept") for e in runs
                   if e.kind == "edit" and summary(e).get("abort_shadow") and e.verdict not in UNDECIDED]
        checks = [(summary(e)["abort_checks"], e.value) for e in runs
                  if e.outcome == "scored" and e.value is not None and isinstance(summary(e).get("abort_checks"), list)]
        margin = 0.0 if self.keep.strict else self.keep.margin_sigmas * (state.sigma or 0.0)
        return abort_spec(self.config, curve=curve, final_loss=float(final), incumbent_value=value, margin=margin,
                          budget_s=self.budget_s, seed=derive_seed(*seed), shadow_outcomes=shadows,
                          scored_checks=checks)
