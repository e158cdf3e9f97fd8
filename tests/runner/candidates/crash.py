"""Raises during training: the runner must record CRASHED with the exception line."""

from autoresearch_rl.env import runtime

ctx = runtime.setup()
raise RuntimeError("boom from the candidate")
