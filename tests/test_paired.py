"""The paired statistics match hand computations."""

from __future__ import annotations

import pytest

from autoresearch_rl.paired import bootstrap_median_ci, compare, sign_test


def test_sign_test_matches_the_binomial_by_hand() -> None:
    # 8 wins, 2 losses: P = 2 * (C(10,0) + C(10,1) + C(10,2)) / 2^10 = 2 * 56 / 1024
    assert sign_test(8, 2) == pytest.approx(112 / 1024)
    assert sign_test(2, 8) == pytest.approx(112 / 1024)
    assert sign_test(5, 5) == 1.0
    assert sign_test(0, 0) == 1.0
    assert sign_test(10, 0) == pytest.approx(2 / 1024)


def test_compare_counts_wins_losses_ties_and_brackets_the_median() -> None:
    a = [0.1, 0.2, 0.3, 0.4, 0.5]
    b = [0.2, 0.2, 0.5, 0.5, 0.4]
    r = compare(a, b)
    assert (r.wins, r.losses, r.ties) == (3, 1, 1)
    assert r.p_sign == pytest.approx(2 * (1 + 4) / 16)
    assert r.median_diff == pytest.approx(-0.1)
    lo, hi = r.ci95_median_diff
    assert lo <= r.median_diff <= hi
    assert r.ci95_median_diff == compare(a, b).ci95_median_diff  # seeded


def test_bootstrap_of_a_constant_is_that_constant() -> None:
    assert bootstrap_median_ci([0.25] * 7) == (0.25, 0.25)
    with pytest.raises(ValueError):
        compare([1.0], [1.0, 2.0])
