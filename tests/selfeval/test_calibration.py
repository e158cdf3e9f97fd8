"""Calibration of the abort threshold: the false-abort rate and its bound, the adaptation, the shadow draw."""

from __future__ import annotations

import statistics

import pytest

from autoresearch_rl.selfeval.abort import AbortConfig
from autoresearch_rl.selfeval.calibration import AbortCalibrator, wilson_upper

CLEAN, FALSE, SILENT = (True, False), (True, True), (False, True)  # (would_abort, would_have_been_kept)


def test_wilson_upper_bound_matches_a_hand_computation() -> None:
    assert wilson_upper(0, 0, 0.9) == 1.0
    z = statistics.NormalDist().inv_cdf(0.9)
    assert wilson_upper(0, 20, 0.9) == pytest.approx(z * z / (20 + z * z))  # p = 0: z²/(n + z²)
    p, n = 0.1, 10  # 1 of 10
    hand = (p + z * z / (2 * n) + z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    assert wilson_upper(1, 10, 0.9) == pytest.approx(hand)
    assert wilson_upper(1, 10, 0.9) > 0.1 and wilson_upper(10, 10, 0.99) == 1.0


def test_the_false_abort_rate_counts_only_runs_where_the_rule_fired() -> None:
    rate = AbortCalibrator(outcomes=(CLEAN, FALSE, SILENT, SILENT, CLEAN, CLEAN)).false_abort_rate()
    assert (rate.rate, rate.false_aborts, rate.would_abort) == (0.25, 1, 4)
    assert rate.upper == pytest.approx(wilson_upper(1, 4, 0.9))
    empty = AbortCalibrator().false_abort_rate()
    assert (empty.rate, empty.would_abort, empty.upper) == (0.0, 0, 1.0)


def test_the_threshold_holds_until_the_data_can_show_the_rate_is_small() -> None:
    assert AbortCalibrator().threshold(3.0) == 3.0
    assert AbortCalibrator(outcomes=(CLEAN,) * 31 + (SILENT,) * 50).threshold(3.0) == 3.0  # bound 5.03% > 5%


def test_the_threshold_tightens_slowly_once_false_aborts_are_shown_rare() -> None:
    # the Wilson bound (90%) with no false abort falls to 5% at the 32nd outcome: 9 tightening steps by the 40th
    assert AbortCalibrator(outcomes=(CLEAN,) * 40).threshold(3.0) == pytest.approx(3.0 - 9 * 0.05)
    assert AbortCalibrator(outcomes=(CLEAN,) * 1000).threshold(3.0) == pytest.approx(2.0)  # at most max_tighten


def test_the_threshold_loosens_after_a_false_abort() -> None:
    assert AbortCalibrator(outcomes=(FALSE,)).threshold(3.0) == 3.5
    assert AbortCalibrator(outcomes=(CLEAN, FALSE, SILENT, CLEAN)).threshold(3.0) == 3.5  # then hold: bound above 5%
    assert AbortCalibrator(outcomes=(FALSE,) * 50).threshold(3.0) == 6.0  # at most max_loosen


def test_the_threshold_is_a_deterministic_function_of_the_ordered_outcomes() -> None:
    late_false = (CLEAN,) * 35 + (FALSE,) + (CLEAN,) * 10  # 4 tightening steps, one loosening, then hold
    assert AbortCalibrator(outcomes=late_false).threshold(3.0) == pytest.approx(3.0 - 4 * 0.05 + 0.5)
    early_false = (FALSE,) + (CLEAN,) * 45  # one loosening, then hold: 1 in 46 is not yet shown below 5%
    assert AbortCalibrator(outcomes=early_false).threshold(3.0) == 3.5
    rare_false = (CLEAN,) * 200 + (FALSE,)  # bound 1.6% after it: no loosening, nor tightening at a false abort
    assert AbortCalibrator(outcomes=rare_false).threshold(3.0) == AbortCalibrator(outcomes=rare_false[:-1]).threshold(3.0)


def test_shadow_runs_are_a_deterministic_draw_at_the_configured_rate() -> None:
    cal = AbortCalibrator.from_config(AbortConfig(shadow_probability=0.2, max_false_abort_rate=0.1), [CLEAN])
    assert (cal.shadow_probability, cal.max_false_abort_rate, cal.outcomes) == (0.2, 0.1, (CLEAN,))
    draws = [cal.should_shadow(seed) for seed in range(10_000)]
    assert draws == [cal.should_shadow(seed) for seed in range(10_000)]
    assert sum(draws) / len(draws) == pytest.approx(0.2, abs=0.015)
    assert not any(AbortCalibrator(shadow_probability=0.0).should_shadow(s) for s in range(1000))
    assert all(AbortCalibrator(shadow_probability=1.0).should_shadow(s) for s in range(1000))
