"""Twenty-four SIGKILLs of the real controller in one campaign; the result is the campaign never killed.

The controller is the one `arl run` uses (the core `Loop`, its SQLite event log, the ledger and git
history projected from it, the PPO agent fine-tuned online), run in its own process; only the
experiments are synthetic (`synthetic.SyntheticLandscape` reads each train.py), so a session costs
its start-up, not a training budget, and the kills can be many. Kills come from the named failpoints
of `autoresearch_rl.faults` (at the n-th hit, n drawn per session) and from outside at a random
moment. The finished campaign must hold every invariant and match an uninterrupted campaign event for
event (proposals, decisions, policy updates) and row for row. The same kills with real training and
evaluation processes: `test_fault_injection.py` (the `long` tier).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from autoresearch_rl.core.events import to_json
from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger import CandidateHistory, Ledger
from autoresearch_rl.ledger.event_store import SQLiteEventStore
from autoresearch_rl.runner.runner import PACKAGE_ROOT

POINTS = ("before_event", "event_recorded", "row_started", "row_committed", "row_finished", "row_decided",
          "projected")
ITERS = 48  # past the 32 decisions of a PPO rollout: a policy update is among the events
KILLS = 24
DRIVER = """
import sys
from pathlib import Path
import torch
sys.path.insert(0, sys.argv[5])
from synthetic_campaign import synthetic_campaign

torch.set_num_threads(1)
print(synthetic_campaign(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), seed=7).stopped.reason)
"""
TESTS = str(Path(__file__).resolve().parent.parent)  # where `synthetic_campaign.py` is


def _session(run_dir: Path, cache: Path, kill_at: str | None, kill_after_s: float | None, agent: str = "ppo") -> str:
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    env.pop("ARL_KILL_AT", None)
    if kill_at:
        env["ARL_KILL_AT"] = kill_at
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(run_dir), str(cache), agent, str(ITERS), TESTS], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=kill_after_s if kill_after_s is not None else 240)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        return "outside"
    if proc.returncode == -signal.SIGKILL:
        return "failpoint"
    assert proc.returncode == 0, err[-2000:]
    return "done"


def _events(run_dir: Path) -> list[str]:
    store = SQLiteEventStore(run_dir)
    try:
        return [to_json(e) for e in store.events()]
    finally:
        store.close()


def _rows(run_dir: Path) -> list[tuple]:
    with Ledger.open(run_dir, create=False) as ledger:
        return [(r.role, r.status, r.val_bpb, r.seed, r.reward, r.description, r.proposal.get("core_exp"))
                for r in ledger.experiments()]


def assert_campaign_invariants(run_dir: Path, iterations: int) -> None:
    """What must hold after any core campaign, killed or not: each experiment of the log in exactly one row,
    each run finished, ledger, git and results.tsv agreeing with the log."""
    events = _events(run_dir)
    with Ledger.open(run_dir, create=False) as ledger:
        rows, meta = ledger.experiments(), ledger.meta()
    assert [r.proposal["core_exp"] for r in rows] == list(range(len(rows)))
    assert not [r for r in rows if r.status in (Status.RUNNING, Status.INTERRUPTED)]
    assert sum(r.role != "calibration" for r in rows) == iterations and meta["stop_rule"] == "max_iters"
    assert meta["projected_events"] == len(events)
    candidates = [r for r in rows if r.role == "candidate"]
    assert all(r.decided and r.reward is not None for r in candidates)
    history = CandidateHistory(run_dir)
    for r in rows:
        assert r.commit_sha and history.experiment_commit(r.id) == r.commit_sha, f"row {r.id}: ledger and git differ"
    assert history.incumbent() == meta["incumbent"]["sha"]
    kept = [r for r in candidates if r.status is Status.KEPT]
    assert meta["incumbent"]["exp_id"] == (kept[-1].id if kept else rows[0].id)
    assert len((run_dir / "results.tsv").read_text().splitlines()) == 1 + sum(r.decided for r in rows)
    assert not list((run_dir / "history" / ".git").glob("**/*.lock")), "a git lock was left behind"


def test_twenty_four_kills_of_the_controller_change_nothing(tmp_path: Path, smoke_cache: Path) -> None:
    reference = tmp_path / "reference"
    assert _session(reference, smoke_cache, None, None) == "done"
    assert_campaign_invariants(reference, ITERS)
    assert any('"type":"PolicyUpdated"' in e for e in _events(reference))  # the agent learns on the way

    run_dir, rng, kills, sessions = tmp_path / "run", random.Random(3), Counter(), 0
    while sum(kills.values()) < KILLS:
        sessions += 1
        assert sessions < 4 * KILLS, f"the campaign finished before {KILLS} kills: {dict(kills)}"
        if sessions % 4 == 0:  # from outside: start-up, a proposal, a git commit, a ledger write, anything
            outcome = _session(run_dir, smoke_cache, None, rng.uniform(1.0, 4.0))
            point = "outside"
        else:
            point = POINTS[sessions % len(POINTS)]
            outcome = _session(run_dir, smoke_cache, f"{point}:{rng.randint(1, 4)}", None)
        if outcome != "done":
            kills[point] += 1
    assert _session(run_dir, smoke_cache, None, None) == "done"

    print(f"controller kills: {dict(kills)} in {sessions} sessions")
    assert len([p for p in kills if p != "outside"]) == len(POINTS)  # every failpoint was hit
    assert_campaign_invariants(run_dir, ITERS)
    assert _events(run_dir) == _events(reference)
    assert _rows(run_dir) == _rows(reference)
