"""Pure reads of the ledger: what the loop asks of the rows (no I/O, so a resumed controller sees the same)."""

from __future__ import annotations

import pytest

from autoresearch_rl import campaign_view as view
from autoresearch_rl.decision import KeepRule, NoiseConfig
from autoresearch_rl.experiment import Status, Timings
from autoresearch_rl.ledger import ExperimentRow
from autoresearch_rl.oracle import OracleConfig


def row(exp_id: int, role: str, status: Status, val_bpb: float | None = None, *, retry_of: int | None = None,
        error: str = "", reward: float | None = None, seed: int = 0, total_s: float = 0.0,
        speed: float | None = None) -> ExperimentRow:
    return ExperimentRow(id=exp_id, created_at=0.0, finished_at=1.0, parent_id=None, role=role, source_hash=f"h{exp_id}",
                         commit_sha=f"c{exp_id}", description="", diff="", seed=seed, status=status, val_bpb=val_bpb,
                         timings=Timings(total=total_s), error=error, reward=reward, retry_of=retry_of,
                         proposal={"incumbent_val_bpb": 1.0, "operator": "scale", "arg": "x2"},
                         summary={} if speed is None else {"tokens_per_second": speed})


def test_calibration_facts_wait_for_enough_scored_runs_then_give_sigma_baseline_and_margin() -> None:
    rows = [row(1, "calibration", Status.OK, 1.00), row(2, "calibration", Status.CRASHED)]
    assert view.calibration_facts(rows, 2, NoiseConfig(), KeepRule()) is None
    rows.append(row(3, "calibration", Status.OK, 1.02))
    facts = view.calibration_facts(rows, 2, NoiseConfig(), KeepRule(margin_sigmas=2.0))
    assert facts is not None and facts["baseline_mean"] == pytest.approx(1.01)
    assert facts["incumbent"]["exp_id"] == 1 and facts["keep_margin"] == pytest.approx(2 * facts["noise_sigma"])


def test_a_calibration_run_on_a_busy_machine_is_left_out_and_replaced() -> None:
    """The `make run` that overlapped another job: one run trained 40% slower and scored 1.98 against 1.68,
    which made sigma 0.17 and the keep margin useless. Its speed gives it away; another run replaces it."""
    rows = [row(1, "calibration", Status.OK, 1.680, speed=7200.0), row(2, "calibration", Status.OK, 1.983, speed=4300.0),
            row(3, "calibration", Status.OK, 1.678, speed=7100.0)]
    usable, disturbed = view.calibration_runs(rows, 3)
    assert [r.id for r in usable] == [1, 3] and [r.id for r in disturbed] == [2]
    assert view.calibration_facts(rows, 3, NoiseConfig(), KeepRule()) is None  # one more run is owed
    rows.append(row(4, "calibration", Status.OK, 1.683, speed=7150.0))
    facts = view.calibration_facts(rows, 3, NoiseConfig(), KeepRule())
    assert facts is not None and facts["calibration_disturbed"] == [2] and facts["noise_sigma"] < 0.01
    assert facts["incumbent"]["exp_id"] == 1


def test_calibration_on_a_machine_whose_speed_really_varies_still_finishes() -> None:
    speeds = [7000.0, 4000.0, 9500.0, 5000.0, 8000.0, 6000.0]  # never 3 within 10% of the median, until 2x wanted
    rows = [row(i + 1, "calibration", Status.OK, 1.7 + 0.01 * i, speed=s) for i, s in enumerate(speeds)]
    assert all(view.calibration_facts(rows[:n], 3, NoiseConfig(), KeepRule()) is None for n in range(3, 6))
    facts = view.calibration_facts(rows, 3, NoiseConfig(), KeepRule())
    assert facts is not None and facts["calibration_disturbed"] == [] and len(facts["calibration_scores"]) == 3


def test_two_calibration_runs_cannot_say_which_was_disturbed_so_both_count() -> None:
    rows = [row(1, "calibration", Status.OK, 1.0), row(2, "calibration", Status.OK, 1.1, speed=10.0),
            row(3, "calibration", Status.OK, 1.2, speed=20.0)]
    assert [r.id for r in view.calibration_runs(rows, 2)[0]] == [1, 2, 3]  # runs without a throughput count
    assert view.calibration_facts(rows[1:], 2, NoiseConfig(), KeepRule())["calibration_disturbed"] == []


def test_an_interrupted_candidate_is_retried_once_unless_its_worker_died_too_often() -> None:
    lost = [row(1, "candidate", Status.INTERRUPTED, error="worker lost: killed"),
            row(2, "candidate", Status.INTERRUPTED, error="worker lost: killed", retry_of=1),
            row(3, "candidate", Status.INTERRUPTED, error="worker lost: killed", retry_of=2)]
    assert view.worker_losses(lost, 3) == 3
    assert view.interrupted_candidates(lost, max_worker_losses=3) == []  # 1 and 2 were re-run; 3 is abandoned
    assert view.interrupted_candidates(lost, max_worker_losses=4) == [3]


def test_undecided_candidates_are_the_ones_that_ran_without_a_verdict() -> None:
    rows = [row(1, "candidate", Status.OK, 0.9), row(2, "candidate", Status.KEPT, 0.9, reward=1.0),
            row(3, "candidate", Status.RUNNING), row(4, "candidate", Status.CRASHED),
            row(5, "candidate", Status.CRASHED, reward=-5.0)]
    assert view.undecided_candidates(rows) == [1, 4]


def test_transitions_budgets_and_improvements() -> None:
    rows = [row(1, "candidate", Status.KEPT, 0.95, reward=5.0, total_s=1800.0),
            row(2, "confirmation", Status.OK, 0.97),
            row(3, "candidate", Status.DISCARDED, 1.0, reward=0.0, total_s=1800.0),
            row(4, "candidate", Status.OK, 0.9, retry_of=None)]  # not decided yet: not a transition
    history = view.transitions(rows, failure_penalty=-5.0)
    assert [t.exp_id for t in history] == [1, 3] and [t.iteration for t in history] == [0, 1]
    assert view.proposals_made(rows) == 3 and view.device_hours(rows) == pytest.approx(1.0)
    assert view.improvement_iterations(history, margin=0.02) == (1,)
    assert view.budget_used(OracleConfig(max_iters=4), 2, 0.0, 1.0) == pytest.approx(0.5)
    assert view.budget_used(OracleConfig(max_iters=100, max_device_hours=2.0), 2, 0.0, 1.0) == pytest.approx(0.5)
