"""The abort rule on constructed curves: clearly worse is aborted, close, equal or better never is."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable

import numpy as np
import pytest

from autoresearch_rl.logparse import ProgressPoint
from autoresearch_rl.selfeval.abort import AbortAssessment, AbortConfig, AbortSpec, assess, budget_fraction, next_check

BUDGET = 20.0
INIT_LOSS = 8.3  # the first logged loss: the model before any update
FRACTIONS = np.round(np.arange(0.025, 1.0001, 0.025), 4)  # a progress line every 0.5 s of a 20 s budget


def plain(f: np.ndarray) -> np.ndarray:
    return 2.0 * f**-0.4 + 3.0


def warmdown(f: np.ndarray) -> np.ndarray:  # the LR decays over the second half: a drop no power law foresees
    return plain(f) - 0.4 * np.clip((f - 0.5) / 0.5, 0.0, 1.0)


def points(curve: Callable[[np.ndarray], np.ndarray], offset: float = 0.0, noise: float = 0.03, seed: int = 0,
           fractions: np.ndarray = FRACTIONS) -> list[ProgressPoint]:
    loss = curve(fractions) + offset + np.random.default_rng(seed).normal(0.0, noise, fractions.size)
    return [ProgressPoint(0, 0.002 * BUDGET, INIT_LOSS, 0.2)] + [
        ProgressPoint(i + 1, float(f * BUDGET), float(v), float(100 * f)) for i, (f, v) in enumerate(zip(fractions, loss))]


# the check schedule these constructed runs were written for (checks from 30% every 10%, measured z 2.5);
# test_measured_abort.py covers the shipped defaults
SCHEDULE: dict = dict(warmup_fraction=0.3, check_every_fraction=0.1, measured_threshold=2.5)


def spec(curve: Callable[[np.ndarray], np.ndarray] = plain, **overrides: object) -> AbortSpec:
    inc = points(curve, seed=1000)
    fields: dict = dict(incumbent_curve=tuple((p.elapsed, p.loss) for p in inc), incumbent_final_loss=inc[-1].loss,
                        incumbent_val_bpb=1.79, margin=0.016, budget_s=BUDGET, **SCHEDULE)
    return AbortSpec(**{**fields, **overrides})


def checks(s: AbortSpec, pts: list[ProgressPoint]) -> list[AbortAssessment]:
    """assess at every check the monitor makes: warm-up, then every check_every_fraction."""
    out, next_fraction = [], s.warmup_fraction
    for i, p in enumerate(pts):
        f = budget_fraction(p, s.budget_s)
        if f >= next_fraction:
            out.append(assess(s, pts[: i + 1]))
            next_fraction = next_check(s, f)
    return out


def test_a_clearly_worse_candidate_is_aborted_at_the_first_check() -> None:
    s = spec()
    verdict = checks(s, points(plain, offset=0.6))[0]
    assert verdict.abort and 0.3 <= verdict.fraction < 0.4, verdict.reason
    assert verdict.predicted_val_bpb > s.incumbent_val_bpb + 0.1
    assert verdict.predicted_val_bpb == pytest.approx(verdict.predicted_final_loss * s.bpb_per_loss)
    assert verdict.predicted_final_loss == pytest.approx(s.incumbent_final_loss + 0.6, abs=0.15)


@pytest.mark.parametrize("curve", [plain, warmdown])
@pytest.mark.parametrize("offset", [0.0, 0.01, -0.05, -0.5])  # equal, close (0.0035 bpb worse), better, much better
def test_close_equal_or_better_candidates_are_never_aborted(curve: Callable[[np.ndarray], np.ndarray],
                                                            offset: float) -> None:
    s = spec(curve)
    for seed in range(10):
        fired = [v for v in checks(s, points(curve, offset=offset, seed=seed)) if v.abort]
        assert not fired, fired[0].reason


def test_the_paired_prediction_foresees_the_incumbents_warmdown() -> None:
    """Both curves share the schedule: the candidate's predicted final loss includes the drop neither fit sees."""
    s = spec(warmdown)
    verdict = checks(s, points(warmdown, offset=0.2, seed=3))[2]  # at 50%, before the warmdown starts
    assert verdict.predicted_final_loss == pytest.approx(float(warmdown(np.array(1.0))) + 0.2, abs=0.1)


def test_nothing_is_aborted_before_the_warmup() -> None:
    s = spec()
    early = FRACTIONS[FRACTIONS < 0.3]
    for pts in (points(plain, offset=5.0, fractions=early), points(lambda f: f * 0 + math.nan, fractions=early)):
        for i in range(1, len(pts) + 1):
            verdict = assess(s, pts[:i])
            assert not verdict.abort and "warm-up" in verdict.reason


def test_a_non_finite_loss_aborts_at_the_first_check() -> None:
    pts = points(plain, seed=5)
    pts[5] = ProgressPoint(pts[5].step, pts[5].elapsed, math.nan, pts[5].percent)  # at 12.5%, before the warm-up
    verdict = checks(spec(), pts)[0]
    assert verdict.abort and verdict.fraction < 0.4 and "non-finite" in verdict.reason
    assert math.isfinite(verdict.predicted_val_bpb)


def test_a_diverging_loss_aborts_at_the_first_check() -> None:
    verdict = checks(spec(), points(lambda f: 8.0 + 10.0 * f, seed=6))[0]
    assert verdict.abort and verdict.fraction < 0.4 and "diverged" in verdict.reason


def test_too_few_points_leave_the_curve_rule_silent() -> None:
    sparse = np.array([0.1, 0.2, 0.35])  # three progress lines by the first check
    verdict = checks(spec(), points(plain, offset=1.0, fractions=sparse))[0]
    assert not verdict.abort and "too few points" in verdict.reason


def test_a_higher_threshold_needs_more_evidence() -> None:
    pts = points(plain, offset=0.08, seed=7)

    def first_abort(z: float) -> float:
        return next((v.fraction for v in checks(spec(threshold=z), pts) if v.abort), math.inf)

    assert first_abort(2.0) <= first_abort(3.0) <= first_abort(6.0)
    assert first_abort(2.0) < 1.0
    assert first_abort(1000.0) == math.inf


def test_the_runtimes_percentage_is_the_budget_fraction() -> None:
    assert budget_fraction(ProgressPoint(3, 5.0, 4.0, 50.0), 20.0) == 0.5  # a token cap ends the run early
    assert budget_fraction(ProgressPoint(3, 5.0, 4.0), 20.0) == 0.25


def test_the_spec_is_picklable_and_validated() -> None:
    s = spec()
    assert pickle.loads(pickle.dumps(s)) == s
    with pytest.raises(ValueError, match="incumbent_final_loss"):
        spec(incumbent_final_loss=0.0)
    with pytest.raises(ValueError, match="margin"):
        spec(margin=-0.1)


def test_the_config_builds_the_spec_with_its_fractions() -> None:
    config = AbortConfig(warmup_fraction=0.2, check_every_fraction=0.05, z=2.5)
    s = config.spec(incumbent_curve=[[1.0, 6.0], [2.0, 5.0]], incumbent_final_loss=5.0, incumbent_val_bpb=1.7,
                    margin=0.01, budget_s=20.0)
    assert (s.warmup_fraction, s.check_every_fraction, s.threshold, s.shadow) == (0.2, 0.05, 2.5, False)
    assert s.incumbent_curve == ((1.0, 6.0), (2.0, 5.0))
    assert config.spec(incumbent_curve=(), incumbent_final_loss=5.0, incumbent_val_bpb=1.7, margin=0.01,
                       budget_s=20.0, threshold=4.0, shadow=True).threshold == 4.0
    with pytest.raises(ValueError):
        AbortConfig(max_false_abort_rate=0.0)
