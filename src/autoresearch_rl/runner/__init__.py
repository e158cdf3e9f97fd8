"""Runs one experiment: a candidate train.py in its own workspace and process group, then the evaluator."""

from autoresearch_rl.runner.runner import RunnerConfig, run_experiment

__all__ = ["RunnerConfig", "run_experiment"]
