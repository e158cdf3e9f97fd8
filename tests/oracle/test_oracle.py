"""The termination oracle: each rule fires when it should and only then, with a reason worth printing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from autoresearch_rl.errors import UserError
from autoresearch_rl.oracle import (
    CampaignProgress,
    Convergence,
    MaxDeviceHours,
    MaxHours,
    MaxIterations,
    OracleConfig,
    StopDecision,
    StopFile,
    StopRule,
    TerminationOracle,
    improvement_probability,
    user_interrupt,
)

DRY = 300  # iterations without improvement that satisfy the default convergence test (213 suffice)


def progress(iterations: int = 10, improvements: tuple[int, ...] = (), *, hours: float = 1.0, device: float = 0.5,
             entropy: float | None = None, floor: float | None = None) -> CampaignProgress:
    return CampaignProgress(iterations, hours, device, improvements, entropy, floor)


def direct_probability(n: int, window: int, a: float, b: float) -> float:
    """1 - P(no success in the window): a product of posterior-predictive failure probabilities."""
    none = 1.0
    for k in range(window):
        none *= (b + n + k) / (a + b + n + k)
    return 1.0 - none


# --- improvement_probability -------------------------------------------------------------------


def test_improvement_probability_of_one_trial_is_the_prior_mean() -> None:
    assert improvement_probability(0, 1) == pytest.approx(0.5)
    assert improvement_probability(0, 1, a=1.0, b=3.0) == pytest.approx(0.25)


@pytest.mark.parametrize(("n", "window", "a", "b"), [(0, 1, 0.5, 0.5), (3, 2, 0.5, 0.5), (5, 4, 1.0, 1.0),
                                                     (10, 7, 2.0, 0.5), (0, 5, 0.5, 0.5)])
def test_improvement_probability_matches_direct_computation(n: int, window: int, a: float, b: float) -> None:
    assert improvement_probability(n, window, a, b) == pytest.approx(direct_probability(n, window, a, b), rel=1e-12)


def test_improvement_probability_decreases_with_dry_iterations_and_grows_with_window() -> None:
    by_n = [improvement_probability(n, 50) for n in range(0, 2000, 7)]
    assert all(x > y for x, y in zip(by_n, by_n[1:]))
    by_window = [improvement_probability(100, w) for w in range(0, 200, 5)]
    assert all(x < y for x, y in zip(by_window, by_window[1:]))
    assert improvement_probability(100, 0) == 0.0


def test_improvement_probability_is_stable_for_huge_counts() -> None:
    # For n >> W the answer tends to a * W / n; a plain lgamma difference loses every digit here.
    assert improvement_probability(10**12, 50) == pytest.approx(0.5 * 50 / 10**12, rel=1e-6)
    assert improvement_probability(10**12, 50) > improvement_probability(10**12 + 1, 50)


def test_long_windows_use_lgamma_and_agree_with_the_product() -> None:
    for n in (0, 100, 5000):
        assert improvement_probability(n, 20_000) == pytest.approx(direct_probability(n, 20_000, 0.5, 0.5), rel=1e-9)


def test_improvement_probability_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        improvement_probability(-1, 50)
    with pytest.raises(ValueError):
        improvement_probability(10, 50, a=0.0)


# --- budgets and stop file ---------------------------------------------------------------------


def test_max_iterations_fires_at_the_limit_only() -> None:
    rule = MaxIterations(20)
    assert rule.check(progress(19)) is None
    decision = rule.check(progress(20))
    assert decision is not None and decision.rule == "max_iters" and "20" in decision.reason


def test_max_hours_fires_once_the_wall_clock_budget_is_spent() -> None:
    rule = MaxHours(8.0)
    assert rule.check(progress(hours=7.99)) is None
    decision = rule.check(progress(hours=8.01))
    assert decision is not None and decision.rule == "max_hours" and "8.01 h" in decision.reason


def test_max_device_hours_counts_device_time_not_wall_clock() -> None:
    rule = MaxDeviceHours(2.0)
    assert rule.check(progress(hours=100.0, device=1.5)) is None
    decision = rule.check(progress(hours=2.5, device=2.0))
    assert decision is not None and decision.rule == "max_device_hours"


def test_stop_file_fires_when_the_file_is_created_and_says_how_to_resume(tmp_path: Path) -> None:
    stop = tmp_path / "STOP"
    rule = StopFile(stop)
    assert rule.check(progress()) is None
    stop.touch()
    decision = rule.check(progress())
    assert decision is not None and decision.rule == "stop_file"
    assert str(stop) in decision.reason and "delete" in decision.reason
    assert stop.exists()  # the oracle leaves it: deleting it is the user's way to resume


# --- convergence -------------------------------------------------------------------------------


def test_convergence_fires_after_a_long_drought_without_a_policy() -> None:
    decision = Convergence().check(progress(DRY + 20, (5, 20)))
    assert decision is not None and decision.rule == "converged"
    assert decision.details["iterations_since_improvement"] == DRY
    assert decision.details["last_improvement_iteration"] == 20
    assert "not checked" in decision.reason


def test_convergence_does_not_fire_with_an_improvement_inside_the_window() -> None:
    rule = Convergence()
    assert rule.check(progress(DRY, (DRY - 10,))) is None
    assert rule.check(progress(DRY, (DRY - 49,))) is None
    assert rule.check(progress(DRY, (DRY,))) is None


def test_convergence_waits_until_the_improvement_probability_is_small() -> None:
    rule = Convergence(window=50, improvement_probability=0.1)
    assert rule.check(progress(60)) is None  # dry for 60 > window, but P(improvement in next 50) is still ~0.27
    first = next(n for n in range(50, 1000) if rule.check(progress(n)) is not None)
    assert improvement_probability(first, 50) < 0.1 <= improvement_probability(first - 1, 50)


def test_convergence_needs_a_full_window_of_iterations() -> None:
    rule = Convergence(window=5, improvement_probability=0.99)  # the probability test passes at once
    assert rule.check(progress(4)) is None
    assert rule.check(progress(5)) is not None


def test_high_policy_entropy_blocks_convergence_and_entropy_near_its_floor_allows_it() -> None:
    rule = Convergence(entropy_slack=0.25)  # floor 0.2: near means ratio <= 0.2 + 0.25 * 0.8 = 0.4
    assert rule.check(progress(DRY, entropy=0.9, floor=0.2)) is None
    assert rule.check(progress(DRY, entropy=0.41, floor=0.2)) is None
    decision = rule.check(progress(DRY, entropy=0.31, floor=0.2))
    assert decision is not None and "entropy ratio 0.31 near its floor 0.20" in decision.reason
    assert decision.details["entropy_limit"] == pytest.approx(0.4)


def test_unknown_entropy_floor_counts_as_zero() -> None:
    rule = Convergence(entropy_slack=0.25)
    assert rule.check(progress(DRY, entropy=0.3)) is None
    assert rule.check(progress(DRY, entropy=0.2)) is not None


# --- the oracle ---------------------------------------------------------------------------------


def test_oracle_checks_the_stop_file_before_budgets_and_budgets_before_convergence(tmp_path: Path) -> None:
    stop = tmp_path / "STOP"
    oracle = TerminationOracle.from_config(OracleConfig(max_iters=DRY, max_hours=1.0), stop_file=stop)
    assert [rule.name for rule in oracle.rules] == ["stop_file", "max_iters", "max_hours", "converged", "audit"]
    everything = progress(DRY, hours=5.0)  # over both budgets and converged
    decision = oracle.check(everything)
    assert decision is not None and decision.rule == "max_iters"
    stop.touch()
    decision = oracle.check(everything)
    assert decision is not None and decision.rule == "stop_file"


def test_oracle_runs_on_while_improving_and_under_budget(tmp_path: Path) -> None:
    oracle = TerminationOracle.from_config(OracleConfig(max_iters=1000, max_hours=24.0, max_device_hours=20.0),
                                           stop_file=tmp_path / "STOP")
    assert oracle.check(progress(DRY, (DRY - 3,), hours=10.0, device=9.0, entropy=0.1)) is None


def test_zero_improvement_probability_disables_convergence() -> None:
    oracle = TerminationOracle.from_config(OracleConfig(improvement_probability=0.0))
    assert oracle.check(progress(10**6)) is None


@pytest.mark.parametrize("bad", [dict(max_iters=0), dict(max_hours=-1.0), dict(max_device_hours=math.inf),
                                 dict(window=0), dict(improvement_probability=1.5), dict(entropy_slack=-0.1),
                                 dict(prior_a=0.0)])
def test_config_rejects_bad_values_with_a_user_error(bad: dict[str, float]) -> None:
    with pytest.raises(UserError):
        OracleConfig(**bad)  # type: ignore[arg-type]


def test_progress_rejects_improvements_outside_the_campaign() -> None:
    with pytest.raises(ValueError):
        progress(10, (11,))
    with pytest.raises(ValueError):
        progress(10, (0,))


# --- contract: every rule ----------------------------------------------------------------------


def fired_decisions(tmp_path: Path) -> list[tuple[StopRule, StopDecision | None]]:
    stop = tmp_path / "STOP"
    stop.touch()
    spent = progress(DRY, (3,), hours=10.0, device=10.0, entropy=0.1, floor=0.05)
    rules: list[StopRule] = [StopFile(stop), MaxIterations(5), MaxHours(1.0), MaxDeviceHours(1.0), Convergence()]
    return [(rule, rule.check(spent)) for rule in rules]


def test_every_rule_is_a_stop_rule_and_names_its_decision(tmp_path: Path) -> None:
    for rule, decision in fired_decisions(tmp_path):
        assert isinstance(rule, StopRule)
        assert decision is not None and decision.rule == rule.name
        assert decision.reason.startswith(f"{rule.name}: ") and "\n" not in decision.reason


def test_decision_details_are_json_serialisable(tmp_path: Path) -> None:
    decisions = [d for _, d in fired_decisions(tmp_path)] + [user_interrupt(progress(7, hours=2.5))]
    decisions.append(Convergence().check(progress(DRY)))  # no policy: None values in the details
    for decision in decisions:
        assert decision is not None
        assert json.loads(json.dumps(decision.details, allow_nan=False)) == decision.details
