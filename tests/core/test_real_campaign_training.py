"""The core loop runs a real train.py campaign: real training and evaluation on the runner, durable, resumable."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoresearch_rl.backends.local import InlineBackend
from autoresearch_rl.campaign import Campaign
from autoresearch_rl.core.events import Scored
from autoresearch_rl.core.state import fold
from autoresearch_rl.ledger.event_store import SQLiteEventStore
from autoresearch_rl.ledger.history import CandidateHistory
from autoresearch_rl.real_campaign import real_campaign
from autoresearch_rl.target import template_source

pytestmark = pytest.mark.long


def test_the_core_loop_trains_scores_keeps_in_git_and_resumes_a_real_campaign(tmp_path: Path, smoke_cache: Path) -> None:
    with Campaign.open(tmp_path / "env", "cpu-smoke", smoke_cache) as env:  # the runner, with the frozen manifest
        runner = env.get_executor()
    base = template_source()
    run_dir = tmp_path / "run"
    first = real_campaign(base, "evolution", 0, 2, InlineBackend(runner), run_dir=run_dir, device="cpu",
                          calibration_runs=2)
    state = first.run()
    assert state.calibrated and state.sigma is not None and state.iterations == 2
    scored = [e for e in first.c.store.events() if isinstance(e, Scored)]
    assert len(scored) >= 2 and all(e.throughput and e.throughput > 0 and e.cost_s > 0 for e in scored)
    first.c.store.close()  # type: ignore[attr-defined]

    again = real_campaign(base, "evolution", 0, 3, InlineBackend(runner), run_dir=run_dir, device="cpu",
                          calibration_runs=2)  # a new session with a larger budget: the same campaign goes on
    assert again.state.experiments == state.experiments
    resumed = again.run()
    assert resumed.iterations == 3 and resumed.experiments[:len(state.experiments)] == state.experiments
    again.c.store.close()  # type: ignore[attr-defined]
    store = SQLiteEventStore(run_dir)
    assert fold(store.events()) == resumed
    history = CandidateHistory(run_dir, file_name="train.py")
    assert history.source_at(history.incumbent()).startswith(base[:200])
