"""Rule (3) of the abort rule: once the campaign has measured how far its curve predictions land from
what runs really score, those errors (not a noise model) say how much a gap is worth.

The curves are test_paired_abort's: a shared data order, batch noise of 0.15 nats, 0.01 of each run's own.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger import ExperimentRow
from autoresearch_rl.selfeval.abort import (MAX_MEASURED, MIN_MEASURED, AbortConfig, check_index, measured_errors,
                                            next_check)
from autoresearch_rl.report import selfeval_markdown
from autoresearch_rl.selfeval.accounting import prediction_error_lines, prediction_errors
from autoresearch_rl.selfeval.monitor import CurveMonitor

from .test_abort import checks
from .test_paired_abort import BUDGET, FINAL_LOSS, MARGIN, VAL_BPB, first_abort, run, spec

CHECKS = 8  # warm-up 30%, then every 10%: checks 0..7 (the last at the end of the budget)


def errors(median: float, sd: float, n: int = 20, seed: int = 0) -> tuple[tuple[float, ...], ...]:
    """Measured errors at every check: n draws around `median` with standard deviation `sd`."""
    rng = np.random.default_rng(seed)
    return tuple(tuple(median + sd * rng.standard_normal(n)) for _ in range(CHECKS))


BEHIND = 0.025  # nats behind at equal tokens: 0.0094 bpb, 0.015 above the keep target


def test_a_candidate_the_model_rule_lets_run_is_stopped_when_predictions_are_measured_to_be_close() -> None:
    """The model rule counts the margin as outcome noise and lets this one run; measured errors of 0.002
    bpb show the curves foresee the outcome far better than that."""
    assert first_abort(spec(), run(gap=BEHIND)) is None
    verdict = first_abort(spec(prediction_errors=errors(0.0, 0.002)), run(gap=BEHIND))
    assert verdict is not None and 0.3 <= verdict.fraction < 0.5, verdict
    assert "errors measured at this check" in verdict.reason
    assert verdict.predicted_val_bpb == pytest.approx(VAL_BPB + 0.375 * BEHIND, abs=0.004)


def test_the_same_candidate_runs_on_when_predictions_are_measured_to_be_poor() -> None:
    assert first_abort(spec(prediction_errors=errors(0.0, 0.02)), run(gap=BEHIND)) is None


def test_curves_measured_to_be_pessimistic_are_corrected_by_their_median_error() -> None:
    """The campaign's runs scored 0.02 bpb better than their curves said: the prediction is moved by that."""
    verdicts = checks(spec(prediction_errors=errors(-0.02, 0.002)), run(gap=BEHIND))
    assert not any(v.abort for v in verdicts)
    assert all(v.predicted_val_bpb == pytest.approx(v.curve_val_bpb - 0.02, abs=0.002) for v in verdicts)


def test_with_fewer_than_min_measured_errors_the_model_rule_decides() -> None:
    few = errors(0.0, 0.002, n=MIN_MEASURED - 1)
    with_few = [(v.abort, v.reason) for v in checks(spec(prediction_errors=few), run(gap=BEHIND))]
    without = [(v.abort, v.reason) for v in checks(spec(), run(gap=BEHIND))]
    assert with_few == without


@pytest.mark.parametrize("gap", [-0.02, 0.0])
def test_equal_or_better_candidates_are_never_stopped_under_realistic_errors(gap: float) -> None:
    """Errors of cpu-tiny's size (sd 0.01 bpb): a candidate as good as the incumbent keeps running, over 30 seeds."""
    for seed in range(30):
        s = spec(prediction_errors=errors(0.0, 0.01, seed=seed))
        assert first_abort(s, run(gap=gap, seed=seed)) is None, seed


def test_every_check_reports_the_curves_prediction_and_its_noise() -> None:
    for v in checks(spec(), run(gap=BEHIND)):
        assert math.isfinite(v.curve_val_bpb) and 0 < v.curve_sd < 0.01
        assert v.curve_val_bpb == v.predicted_val_bpb  # no measured errors: nothing corrects it


def test_measured_errors_group_by_check_and_keep_the_newest() -> None:
    runs = [([[0.31, 1.70, 0.01], [0.42, 1.69, 0.01], [0.95, 1.68, 0.01]], 1.66),  # 0.95: check 6
            ([[0.30, 1.60, 0.01], [0.41, math.nan, math.nan]], 1.65),  # no prediction at its second check
            ([[0.33, 1.64]], math.inf)]  # not a score
    got = measured_errors(runs, 0.3, 0.1)
    assert len(got) == 7 and got[2:6] == ((),) * 4  # checks 0..6 seen
    assert got[0] == pytest.approx((-0.04, 0.05)) and got[1] == pytest.approx((-0.03,))
    assert got[6] == pytest.approx((-0.02,))
    many = measured_errors([([[0.3, 1.0]], 1.0 + i) for i in range(MAX_MEASURED + 5)], 0.3, 0.1)
    assert len(many[0]) == MAX_MEASURED and many[0][-1] == MAX_MEASURED + 4
    assert measured_errors([], 0.3, 0.1) == ()
    assert check_index(0.299999999, 0.3, 0.1) == 0 and check_index(0.1, 0.3, 0.1) == 0
    assert check_index(0.5, 0.3, 0.1) == 2 and check_index(0.7, 0.3, 0.1) == 4  # 0.7 - 0.3 is 0.39999... in floats
    assert next_check(spec(), 0.7) == pytest.approx(0.8)  # one check at 70%, not a second one at the next line


def test_the_spec_carries_measured_errors_and_the_config_moves_their_threshold_with_the_calibration() -> None:
    s = spec(prediction_errors=errors(0.0, 0.01))
    assert pickle.loads(pickle.dumps(s)) == s
    with pytest.raises(ValueError, match="prediction_errors must be finite"):
        spec(prediction_errors=((0.1, math.nan),))
    config = AbortConfig(z=3.0, measured_z=2.5)
    curve = [(1.0, 5.0, 10), (2.0, 4.0, 20)]
    built = config.spec(incumbent_curve=curve, incumbent_final_loss=4.0, incumbent_val_bpb=1.6, margin=MARGIN,
                        budget_s=20.0, threshold=4.0, prediction_errors=[[0.01, -0.01]])
    assert built.measured_threshold == 3.5 and built.prediction_errors == ((0.01, -0.01),)
    assert config.spec(incumbent_curve=curve, incumbent_final_loss=4.0, incumbent_val_bpb=1.6, margin=MARGIN,
                       budget_s=20.0).measured_threshold == 2.5
    with pytest.raises(ValueError, match="measured_z"):
        AbortConfig(measured_z=-1.0)


def _follow(monitor: CurveMonitor, log: Path, points: list) -> None:  # type: ignore[type-arg]
    """Append the run's progress lines one at a time, as train.py prints them, calling the monitor after each."""
    for p in points:
        with log.open("a") as f:
            f.write(f"step {p.step:05d} | elapsed {p.elapsed:.2f}s | progress {p.percent:.1f}% | loss {p.loss:.6f} "
                    f"| tokens {p.tokens} | tok/s 1\n")
        monitor()


def test_a_monitor_records_every_checks_prediction_for_the_measured_rule(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.touch()
    monitor = CurveMonitor(spec(), log)
    _follow(monitor, log, run(gap=0.0))
    records = monitor.summary()["abort_checks"]
    assert len(records) == monitor.checks == CHECKS and monitor.fired is None
    assert [check_index(f, 0.3, 0.1) for f, _, _ in records] == list(range(CHECKS))
    assert all(abs(pred - VAL_BPB) < 0.03 and sd > 0 for _, pred, sd in records)


def test_a_shadow_monitor_goes_on_recording_after_it_would_have_stopped(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.touch()
    monitor = CurveMonitor(spec(shadow=True), log)
    _follow(monitor, log, run(gap=0.08))
    summary = monitor.summary()
    assert 0.3 <= summary["would_abort_at_fraction"] < 0.4
    assert len(summary["abort_checks"]) == CHECKS  # every check, the ones after it would have stopped included


def test_the_loop_learns_errors_from_scored_runs_that_recorded_their_checks() -> None:
    def row(i: int, status: Status, val_bpb: float | None, summary: dict) -> ExperimentRow:  # type: ignore[type-arg]
        return ExperimentRow(id=i, created_at=0.0, finished_at=1.0, parent_id=None, role="candidate", source_hash="",
                             commit_sha="", description="", diff="", seed=i, status=status, val_bpb=val_bpb,
                             summary=summary)

    rows = [row(1, Status.DISCARDED, 1.70, {"abort_checks": [[0.3, 1.72, 0.01], [0.4, 1.71, 0.01]]}),
            row(2, Status.ABORTED, None, {"abort_checks": [[0.3, 1.9, 0.01]]}),  # no score: nothing to learn
            row(3, Status.KEPT, 1.60, {"abort_checks": [[0.31, 1.58, 0.01]], "abort_shadow": True}),
            row(4, Status.DISCARDED, 1.65, {})]  # judged by no rule (the campaign ran without abort)
    first, second = prediction_errors(rows, AbortConfig(warmup_fraction=0.3, check_every_fraction=0.1))
    assert first == pytest.approx((-0.02, 0.02)) and second == pytest.approx((-0.01,))
    by_default = prediction_errors(rows, AbortConfig())  # checks from 20%, every 5%: 30% and 40% are checks 2 and 4
    assert by_default[2] == pytest.approx((-0.02, 0.02)) and by_default[4] == pytest.approx((-0.01,))


def test_the_report_shows_the_errors_the_measured_rule_judges_by() -> None:
    rows = [ExperimentRow(id=i, created_at=0.0, finished_at=1.0, parent_id=None, role="candidate", source_hash="",
                          commit_sha="", description="", diff="", seed=i, status=Status.DISCARDED, val_bpb=1.70,
                          summary={"abort_checks": [[0.3, 1.70 + 0.01 * (i % 3 - 1), 0.01], [0.52, 1.69, 0.01]]})
             for i in range(9)]
    text = selfeval_markdown(rows, {})
    assert "| 30% | 9 | +0.0000 | 0.0148 |" in text and "| 50% | 9 | +0.0100 | 0.0000 |" in text
    assert "| 40% |" not in text  # no run was checked there
    assert prediction_error_lines([]) == []


def test_the_shipped_schedule_checks_from_a_fifth_of_the_budget_every_twentieth(tmp_path: Path) -> None:
    """Defaults: first check at 20%, then every 5% to the end (17 checks); a clearly losing run stops at the first."""
    config = AbortConfig()
    curve = [(p.elapsed, p.loss, p.tokens) for p in run(seed=1000)]  # the incumbent, as test_paired_abort's spec()
    default = config.spec(incumbent_curve=curve, incumbent_final_loss=FINAL_LOSS, incumbent_val_bpb=VAL_BPB,
                          margin=MARGIN, budget_s=BUDGET)
    assert (default.warmup_fraction, default.check_every_fraction, default.measured_threshold) == (0.2, 0.05, 2.0)
    log = tmp_path / "log"
    log.touch()
    monitor = CurveMonitor(default, log)
    _follow(monitor, log, run(gap=0.0))
    records = monitor.summary()["abort_checks"]
    assert monitor.fired is None and len(records) == monitor.checks == 17
    assert [check_index(f, 0.2, 0.05) for f, _, _ in records] == list(range(17))
    verdict = first_abort(default, run(gap=0.3))
    assert verdict is not None and 0.2 <= verdict.fraction < 0.25, verdict
