"""OVER_BUDGET from the frozen runtime's own progress lines: honest slow steps pass, stretched or run-on loops do not."""

from __future__ import annotations

from pathlib import Path

from autoresearch_rl.logparse import parse_log
from autoresearch_rl.runner.runner import _over_budget


def _log(tmp_path: Path, lines: list[tuple[float, float]]) -> Path:
    path = tmp_path / "train.log"
    path.write_text("".join(f"step {i:05d} | elapsed {e:.2f}s | progress {p:.1f}% | loss 5.000000 | tokens 1 | tok/s 1\n"
                            for i, (e, p) in enumerate(lines)))
    return path


def test_an_honest_run_is_within_budget(tmp_path: Path, smoke_preset) -> None:
    lines = [(0.3, 10.0), (0.6, 20.0), (2.9, 96.7), (3.2, 100.0)]
    assert _over_budget(parse_log(_log(tmp_path, lines)), smoke_preset) == ""


def test_one_slow_last_step_is_honest(tmp_path: Path, smoke_preset) -> None:
    lines = [(1.0, 33.3), (15.5, 100.0)]  # a huge batch: the step that crosses the budget takes 14 s
    assert _over_budget(parse_log(_log(tmp_path, lines)), smoke_preset) == ""


def test_rounding_to_100_percent_one_step_early_is_honest(tmp_path: Path, smoke_preset) -> None:
    lines = [(2.5, 83.3), (2.999, 100.0), (3.3, 100.0)]  # 99.96% prints as 100.0%
    assert _over_budget(parse_log(_log(tmp_path, lines)), smoke_preset) == ""


def test_a_stretched_budget_is_over(tmp_path: Path, smoke_preset) -> None:
    lines = [(1.0, 11.1), (4.0, 44.4), (8.9, 98.9), (9.1, 100.0)]  # budget.seconds *= 3
    assert "still below its budget after 8.9 s" in _over_budget(parse_log(_log(tmp_path, lines)), smoke_preset)


def test_running_on_after_the_budget_is_over(tmp_path: Path, smoke_preset) -> None:
    lines = [(2.9, 96.7), (3.2, 100.0), (3.5, 100.0), (3.8, 100.0)]
    assert "kept training for 2 steps" in _over_budget(parse_log(_log(tmp_path, lines)), smoke_preset)
