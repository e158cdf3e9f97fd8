"""The keep rule, the reward and the noise estimate: the arithmetic every decision rests on."""

from __future__ import annotations

import pytest

from autoresearch_rl.decision import KeepRule, NoiseConfig, RewardConfig, Verdict, judge, noise_sigma, reward

SIGMA = 0.01
RULE = KeepRule(margin_sigmas=2.0, confirm_below_sigmas=4.0)


def test_win_inside_the_noise_margin_is_discarded() -> None:
    assert judge(1.00, [0.985], SIGMA, RULE) is Verdict.DISCARD  # 1.5 sigma: could be a seed change


def test_small_win_beyond_the_margin_asks_for_confirmation() -> None:
    assert judge(1.00, [0.975], SIGMA, RULE) is Verdict.CONFIRM


def test_seed_luck_that_does_not_reproduce_is_discarded_after_confirmation() -> None:
    # the reference kept a pure seed change; here the re-run regresses to the mean and the mean fails the margin
    assert judge(1.00, [0.975, 1.001], SIGMA, RULE) is Verdict.DISCARD


def test_confirmed_win_is_kept() -> None:
    assert judge(1.00, [0.975, 0.972], SIGMA, RULE) is Verdict.KEEP


def test_overwhelming_win_is_kept_without_confirmation() -> None:
    assert judge(1.00, [0.95], SIGMA, RULE) is Verdict.KEEP


def test_strict_rule_keeps_any_improvement_like_the_reference() -> None:
    strict = KeepRule(strict=True)
    assert judge(1.00, [0.9999], SIGMA, strict) is Verdict.KEEP
    assert judge(1.00, [1.0], SIGMA, strict) is Verdict.DISCARD


def test_reward_is_improvement_in_sigmas_clipped() -> None:
    assert reward(1.00, 0.98, SIGMA) == pytest.approx(2.0)
    assert reward(1.00, 1.03, SIGMA) == pytest.approx(-3.0)
    assert reward(1.00, 0.0, SIGMA) == RewardConfig().clip
    assert reward(1.00, 5.0, SIGMA) == -RewardConfig().clip


def test_failure_gets_the_fixed_penalty() -> None:
    assert reward(1.00, None, SIGMA, RewardConfig(failure_penalty=-4.0)) == -4.0
    assert reward(1.00, float("nan"), SIGMA) == RewardConfig().failure_penalty


def test_noise_sigma_is_the_sample_std_with_a_floor() -> None:
    assert noise_sigma([1.0, 1.02, 0.98]) == pytest.approx(0.02)
    assert noise_sigma([1.0, 1.0, 1.0], NoiseConfig(min_sigma_fraction=0.002)) == pytest.approx(0.002)


def test_noise_needs_two_runs() -> None:
    with pytest.raises(ValueError):
        noise_sigma([1.0])
    with pytest.raises(ValueError):
        NoiseConfig(calibration_seeds=1)
