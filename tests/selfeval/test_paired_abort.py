"""The paired abort rule: runs that share the data order are compared at equal tokens.

Batch-to-batch noise (the text of a batch is easier or harder) is shared by both runs at the same
token count and cancels in their difference; only each run's own noise is left. These curves have
a batch noise five times the runs' own, as cpu-tiny has (tens of times, measured; see docs/theory.md).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from autoresearch_rl.logparse import ProgressPoint
from autoresearch_rl.selfeval.abort import AbortAssessment, AbortSpec

from .test_abort import SCHEDULE, checks  # assess at every check the live monitor makes

BUDGET = 20.0
STEPS = 40  # the incumbent's steps in the budget
BATCH_TOKENS = 4096
INIT_LOSS = 8.3
VAL_BPB, FINAL_LOSS = 1.65, 4.4  # r = 0.375 bpb per nat, as cpu-tiny
MARGIN = 0.006  # 2 sigma of cpu-tiny's seed noise under a shared data order
BATCH_NOISE = np.random.default_rng(99).normal(0.0, 0.15, 4 * STEPS)  # one value per batch: shared by every run


def per_token(k: np.ndarray) -> np.ndarray:
    """Mean loss after k batches of the incumbent's size."""
    return 1.5 * (k / STEPS) ** -0.3 + FINAL_LOSS - 1.5


def run(gap: float = 0.0, speed: float = 1.0, seed: int = 0, noise: float = 0.01, batch: int = 1,
        with_tokens: bool = True, first_step_s: float = 0.0) -> list[ProgressPoint]:
    """A run's progress lines: one per step, `speed` times the incumbent's steps per second,
    `batch` times its batch size, `gap` nats above it at equal tokens, `first_step_s` more for step 0. As the runtime prints them:
    step i's loss is of the model after i updates, its elapsed time and tokens count step i too."""
    own = np.random.default_rng(seed).normal(0.0, noise, 4 * STEPS)
    out, step = [], 0
    while (elapsed := first_step_s + (step + 1) * (BUDGET / STEPS) * batch / speed) <= BUDGET + 1e-9:
        k = step * batch  # batches of the incumbent's size trained on before this step
        loss = INIT_LOSS if step == 0 else per_token(np.array(k, dtype=float)) + gap + BATCH_NOISE[k] + own[step]
        out.append(ProgressPoint(step, elapsed, float(loss), 100 * elapsed / BUDGET,
                                 (step + 1) * batch * BATCH_TOKENS if with_tokens else None))
        step += 1
    return out


def spec(**overrides: object) -> AbortSpec:
    incumbent = run(seed=1000)
    curve = tuple((p.elapsed, p.loss, p.tokens) for p in incumbent)
    fields: dict = dict(incumbent_curve=curve, incumbent_final_loss=FINAL_LOSS, incumbent_val_bpb=VAL_BPB,
                        margin=MARGIN, budget_s=BUDGET, **SCHEDULE)
    return AbortSpec(**{**fields, **overrides})


def first_abort(s: AbortSpec, pts: list[ProgressPoint]) -> AbortAssessment | None:
    return next((c for c in checks(s, pts) if c.abort), None)


def test_a_curve_with_a_third_column_gives_the_spec_its_token_counts() -> None:
    s = spec()
    assert len(s.incumbent_tokens) == len(s.incumbent_curve) and s.incumbent_tokens[1] == 2 * BATCH_TOKENS
    assert all(len(point) == 2 for point in s.incumbent_curve)
    assert pickle.loads(pickle.dumps(s)) == s
    with pytest.raises(ValueError, match="one count per curve point"):
        AbortSpec(incumbent_curve=((1.0, 5.0), (2.0, 4.0)), incumbent_final_loss=4.0, incumbent_val_bpb=1.6,
                  margin=0.01, budget_s=BUDGET, incumbent_tokens=(1,))


def test_paired_a_candidate_behind_by_ten_sigma_is_aborted_at_the_first_check() -> None:
    verdict = checks(spec(), run(gap=0.08))[0]
    assert verdict.abort and 0.3 <= verdict.fraction < 0.4, verdict.reason
    assert "equal tokens" in verdict.reason
    assert verdict.predicted_val_bpb == pytest.approx(VAL_BPB + 0.375 * 0.08, abs=0.01)


def test_the_same_candidate_without_token_counts_is_not_seen_through_the_batch_noise() -> None:
    """The unpaired rule, facing 0.15 nats of batch noise per point, cannot tell a 0.08 gap apart."""
    unpaired = spec(incumbent_curve=tuple((p.elapsed, p.loss) for p in run(seed=1000)))
    assert first_abort(unpaired, run(gap=0.08, with_tokens=False)) is None


@pytest.mark.parametrize("gap", [-0.02, 0.0, 0.005])
def test_paired_equal_better_or_barely_worse_candidates_are_never_aborted(gap: float) -> None:
    s = spec()
    fired = [seed for seed in range(30) if first_abort(s, run(gap=gap, seed=seed)) is not None]
    assert fired == []


def test_a_slower_candidate_pays_for_the_tokens_it_will_not_see() -> None:
    """Equal at equal tokens, but at half the speed it ends where the incumbent was at half its tokens."""
    verdict = first_abort(spec(), run(speed=0.5, seed=3))
    assert verdict is not None, [c.reason for c in checks(spec(), run(speed=0.5, seed=3))]
    expected = per_token(np.array(STEPS / 2)) - per_token(np.array(float(STEPS)))
    assert verdict.predicted_val_bpb == pytest.approx(VAL_BPB + 0.375 * expected, abs=0.02)


def test_a_faster_candidate_behind_at_equal_tokens_can_still_win_and_is_not_aborted() -> None:
    """1.5x the speed buys more loss than a 0.05 gap per token costs: the rule lets it run."""
    s = spec()
    assert all(first_abort(s, run(gap=0.05, speed=1.5, seed=seed)) is None for seed in range(10))
    assert first_abort(s, run(gap=0.05, seed=0)) is not None  # the same gap at equal speed is doomed


def test_different_batch_sizes_fall_back_to_the_unpaired_rule() -> None:
    """Twice the batch still pairs at every other incumbent point (once it has enough of them); counts
    that never match fall back to the unpaired rule."""
    s = spec()
    double = run(batch=2, gap=0.0)
    assert all("equal tokens" in c.reason for c in checks(s, double) if c.fraction >= 0.6)
    shifted = [ProgressPoint(p.step, p.elapsed, p.loss, p.percent, p.tokens + 7) for p in run(gap=0.0)]
    assert all("equal tokens" not in c.reason for c in checks(s, shifted))


def test_a_slow_first_step_that_both_runs_pay_is_not_taken_for_slowness() -> None:
    """Allocation and warm-up make the first step slow in every run: the candidate's end is projected
    from its token count against the incumbent's at the same elapsed time, not from tokens / fraction."""
    s = spec(incumbent_curve=tuple((p.elapsed, p.loss, p.tokens) for p in run(seed=1000, first_step_s=3.0)))
    paired = [v.reason for v in checks(s, run(seed=4, first_step_s=3.0)) if "equal tokens" in v.reason]
    assert len(paired) >= 5 and all("+0.0000 for its speed" in reason for reason in paired), paired
