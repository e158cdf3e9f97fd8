"""A durable `arl run` campaign whose experiments are synthetic: the real controller in milliseconds per run.

The loop, event log, ledger projection and git history are those of `arl run` (`real_campaign.py`);
only training is replaced by `synthetic.SyntheticLandscape`, which reads each candidate train.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoresearch_rl.backends.base import Backend
from autoresearch_rl.backends.local import InlineBackend
from autoresearch_rl.campaign import Campaign
from autoresearch_rl.core.state import CampaignState
from autoresearch_rl.real_campaign import real_campaign
from autoresearch_rl.synthetic import LandscapeConfig, SyntheticLandscape
from autoresearch_rl.target import template_source

BASE = template_source()


def synthetic_campaign(run_dir: Path, cache: Path, agent: str = "greedy", iters: int = 25, seed: int = 1,
                       executor: Any = None, backend: Backend | None = None, **settings: Any) -> CampaignState:
    """Run (or resume) the campaign in `run_dir` to `iters` iterations; returns its final state."""
    with Campaign.open(run_dir, "cpu-smoke", cache) as campaign:
        campaign.executor = executor or SyntheticLandscape(BASE, LandscapeConfig(seed=seed))
        backend = backend or InlineBackend(campaign.executor)
        loop = real_campaign(BASE, agent, seed, iters, backend, ledger=campaign, validate=False, **settings)
        campaign.recover()
        try:
            return loop.run()
        finally:
            backend.shutdown()
            loop.c.store.close()  # type: ignore[attr-defined]
