"""The verdict on a finished candidate as a pure function of ledger rows: keep, discard, or the evidence it waits for."""

from __future__ import annotations

import pytest

from autoresearch_rl.experiment import Status
from autoresearch_rl.keep_decision import judge_candidate
from autoresearch_rl.ledger import ExperimentRow
from autoresearch_rl.loop_config import Incumbent, LoopConfig

INC = Incumbent(exp_id=1, sha="a" * 40, val_bpb=1.0, source_hash="inc")
SIGMA = 0.01  # margin 2 sigma = 0.02; a win below 4 sigma (0.04) owes a confirmation
CONFIG = LoopConfig(drift=None)


def row(exp_id: int, role: str, status: Status, val_bpb: float | None, parent: int | None = 1,
        reward: float | None = None) -> ExperimentRow:
    return ExperimentRow(id=exp_id, created_at=0.0, finished_at=1.0, parent_id=parent, role=role,
                         source_hash=f"h{exp_id}", commit_sha="", description="", diff="", seed=exp_id,
                         status=status, val_bpb=val_bpb, proposal={"incumbent_val_bpb": 1.0}, reward=reward)


def test_a_clear_win_is_kept_at_once_with_its_reward() -> None:
    cand = row(2, "candidate", Status.OK, 0.95)
    v = judge_candidate(cand, [cand], INC, SIGMA, CONFIG)
    assert v.status is Status.KEPT and v.kept and v.score == pytest.approx(0.95) and v.reward == pytest.approx(5.0)


def test_a_small_win_waits_for_its_confirmation_then_the_mean_decides() -> None:
    cand = row(2, "candidate", Status.OK, 0.975)
    assert judge_candidate(cand, [cand], INC, SIGMA, CONFIG).wait == "confirm"
    running = row(3, "confirmation", Status.RUNNING, None, parent=2)
    waiting = judge_candidate(cand, [cand, running], INC, SIGMA, CONFIG)
    assert waiting.status is None and waiting.wait == ""  # its confirmation is in flight: nothing to do
    lucky = row(3, "confirmation", Status.OK, 1.001, parent=2)
    v = judge_candidate(cand, [cand, lucky], INC, SIGMA, CONFIG)
    assert v.status is Status.DISCARDED and v.score == pytest.approx(0.988)  # the mean of its runs: not 2 sigma
    real = row(3, "confirmation", Status.OK, 0.97, parent=2)
    assert judge_candidate(cand, [cand, real], INC, SIGMA, CONFIG).status is Status.KEPT


def test_a_confirmation_that_crashed_means_the_win_does_not_reproduce() -> None:
    cand = row(2, "candidate", Status.OK, 0.975)
    crashed = row(3, "confirmation", Status.CRASHED, None, parent=2)
    assert judge_candidate(cand, [cand, crashed], INC, SIGMA, CONFIG).status is Status.DISCARDED


def test_a_failure_keeps_its_status_and_gets_the_failure_penalty() -> None:
    cand = row(2, "candidate", Status.CRASHED, None)
    v = judge_candidate(cand, [cand], INC, SIGMA, CONFIG)
    assert v.status is Status.CRASHED and v.reward == CONFIG.reward.failure_penalty and v.score is None


@pytest.mark.parametrize("status, reward", [(Status.KEPT, 1.0), (Status.RUNNING, None), (Status.INTERRUPTED, None),
                                            (Status.DISCARDED, None)])
def test_nothing_is_decided_twice_or_before_it_ran(status: Status, reward: float | None) -> None:
    cand = row(2, "candidate", status, 0.9 if status is not Status.RUNNING else None, reward=reward)
    v = judge_candidate(cand, [cand], INC, SIGMA, CONFIG)
    assert v.status is None and v.wait == ""
