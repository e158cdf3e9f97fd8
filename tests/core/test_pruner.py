"""Early abort on the core loop: the pruner builds a candidate's rule from the events, the worker stops a
doomed run on its loss curve, and the decider rewards it from the prediction."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoresearch_rl.backends.local import InlineBackend
from autoresearch_rl.campaign import Campaign as RunnerCampaign
from autoresearch_rl.core.events import (Aborted, Calibrated, CampaignStarted, Decided, Proposed, Scored, from_json,
                                         to_json)
from autoresearch_rl.core.proposer import Proposal
from autoresearch_rl.core.pruner import CurvePruner
from autoresearch_rl.core.space import DiscreteSpace
from autoresearch_rl.core.state import CampaignState, Experiment, fold
from autoresearch_rl.decision import KeepRule
from autoresearch_rl.real_campaign import real_campaign
from autoresearch_rl.selfeval.abort import AbortConfig
from autoresearch_rl.target import template_source
from autoresearch_rl.target.params import apply_params

CURVE = [[1.0, 4.0, 100], [2.0, 3.5, 200], [3.0, 3.2, 300], [4.0, 3.0, 400]]


def campaign(*later: object) -> list:
    """Calibrated on two runs with curves (sigma 0.01), then `later` events."""
    details = {"summary": {"curve": CURVE, "final_train_loss": 3.0}}
    return [CampaignStarted("t", 0, (0,), 2), Proposed(0, (0,), "calibration", None),
            Scored(0, 1.50, details=details), Proposed(1, (0,), "calibration", None),
            Scored(1, 1.52, details=details), Calibrated(sigma=0.01, baseline=1.51), *later]


def test_a_candidate_is_judged_against_the_incumbents_curve_with_the_keep_margin() -> None:
    state = fold(campaign(Proposed(2, (1,), "edit", 0)))
    spec = CurvePruner(budget_s=10.0, config=AbortConfig(shadow_probability=0.0)).rule(state, 2, (0, 1, 0))
    assert spec is not None
    assert spec.incumbent_curve == tuple((p[0], p[1]) for p in CURVE) and spec.incumbent_tokens == (100, 200, 300, 400)
    assert spec.incumbent_final_loss == 3.0 and spec.incumbent_val_bpb == state.incumbent_value
    assert spec.margin == KeepRule().margin_sigmas * 0.01 and spec.budget_s == 10.0 and not spec.shadow


def test_evidence_runs_and_curveless_campaigns_run_their_full_budget() -> None:
    pruner = CurvePruner(budget_s=10.0)
    state = fold(campaign(Proposed(2, (0,), "remeasure", 0), Proposed(3, (1,), "confirm", 1)))
    assert pruner.rule(state, 2, (0,)) is None and pruner.rule(state, 3, (0,)) is None
    landscape = fold([CampaignStarted("t", 0, (0,), 2), Proposed(0, (0,), "calibration", None), Scored(0, 1.5),
                      Proposed(1, (0,), "calibration", None), Scored(1, 1.6), Calibrated(0.07, 1.55),
                      Proposed(2, (1,), "edit", 0)])
    assert pruner.rule(landscape, 2, (0,)) is None
    off = CurvePruner(budget_s=10.0, config=AbortConfig(enabled=False))
    assert off.rule(fold(campaign(Proposed(2, (1,), "edit", 0))), 2, (0,)) is None


def test_shadow_runs_that_would_have_been_aborted_but_were_kept_raise_the_threshold() -> None:
    later: list = []
    for i in range(2, 8):  # six shadow runs: the rule fired on each, and each was kept
        later += [Proposed(i, (i,), "edit", 0),
                  Scored(i, 1.0, details={"summary": {"abort_shadow": True, "would_abort_at_fraction": 0.3,
                                                          "curve": CURVE, "final_train_loss": 3.0}}),
                  Decided(i, "kept", 0.02, 1.0)]
    state = fold(campaign(*later, Proposed(8, (9,), "edit", 7)))
    config = AbortConfig(shadow_probability=0.0)
    state_clean = fold(campaign(Proposed(2, (9,), "edit", 0)))
    assert CurvePruner(10.0, config).rule(state_clean, 2, (0,)).threshold == config.z
    assert CurvePruner(10.0, config).rule(state, 8, (0,)).threshold > config.z


def test_details_survive_the_event_log() -> None:
    event = Aborted(3, "doomed", predicted=1.9, cost_s=2.0, details={"summary": {"aborted_at_fraction": 0.25}})
    assert from_json(to_json(event)) == event
    old = '{"v":1,"type":"Scored","exp":0,"value":1.5,"cost_s":0.0,"throughput":null}'  # before details
    assert from_json(old) == Scored(0, 1.5)


# a train.py whose learning rates may be raised 100-fold: a candidate sure to lose, on a base with many progress lines
SMALL, _ = apply_params(template_source(), {"DEPTH": 1, "BATCH_SIZE": 1})
WIDE = (SMALL.replace("search: log 0.001..0.2", "search: log 0.001..2.0")
        .replace("search: log 0.01..2.0", "search: log 0.01..30.0")
        .replace("search: log 0.0005..0.1", "search: log 0.0005..1.0"))
LRS = ("MATRIX_LR", "EMBEDDING_LR", "UNEMBEDDING_LR")


class LearningRatesUp:
    """Proposes the start with every learning rate at the top of its range."""

    name = "lr-top"

    def __init__(self, space: DiscreteSpace) -> None:
        self.space = space
        self.seen: list[Experiment] = []

    def propose(self, state: CampaignState) -> Proposal:
        config = list(state.start)
        for name in LRS:
            k = self.space.knobs.index(name)
            config[k] = len(self.space.choices[k]) - 1
        return Proposal(tuple(config))

    def observe(self, state: CampaignState, experiment: Experiment) -> None:
        self.seen.append(experiment)


@pytest.mark.long
def test_a_doomed_candidate_is_aborted_early_on_the_core_loop_and_rewarded_from_its_prediction(
        tmp_path: Path, smoke_cache: Path) -> None:
    with RunnerCampaign.open(tmp_path / "env", "cpu-smoke", smoke_cache) as env:
        runner, budget = env.get_executor(), env.preset.time_budget_s
    agents: list[LearningRatesUp] = []

    def agent(space: DiscreteSpace) -> LearningRatesUp:
        agents.append(LearningRatesUp(space))
        return agents[-1]

    loop = real_campaign(WIDE, agent, 0, 1, InlineBackend(runner), run_dir=tmp_path / "run", device="cpu",
                         calibration_runs=2, validate=False,
                         pruner=CurvePruner(budget, AbortConfig(shadow_probability=0.0)))
    state = loop.run()
    candidate = state.edits[0]
    assert candidate.outcome == "aborted", candidate
    calibration = [e for e in state.experiments if e.kind == "calibration"]
    assert candidate.details["summary"]["aborted_at_fraction"] < 0.5 and candidate.cost_s < min(e.cost_s for e in calibration)
    assert candidate.value is not None and candidate.value > state.incumbent_value  # the predicted val_bpb
    assert candidate.verdict == "failed" and -5.0 <= candidate.reward < 0
    assert agents[0].seen == [candidate] and state.incumbent_exp != candidate.exp
    assert all(e.details["summary"]["curve"] and e.details["summary"]["final_train_loss"] > 0 for e in calibration)
