"""Twenty-four SIGKILLs of the real controller in one campaign; the result is the campaign never killed.

The controller is the one `arl run` uses (ResearchLoop, the SQLite ledger, git history, the PPO
checkpoint), run by `tests/loop/driver.py` in its own process; only the experiments are synthetic,
so a session costs its start-up, not a training budget, and the kills can be many. Kills come from
the named failpoints of `autoresearch_rl.faults` (at the n-th hit, n drawn per session) and from
outside at a random moment. The finished campaign must hold every invariant and match an
uninterrupted campaign decision for decision, with the same policy weights. The same kills with
real training and evaluation processes: `test_fault_injection.py` (the `long` tier).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import torch

from autoresearch_rl.runner.runner import PACKAGE_ROOT
from loop.test_loop import DRIVER, _outcomes, assert_campaign_invariants

POINTS = ("experiment_started", "experiment_ran", "experiment_finished", "proposed", "before_decision", "decided",
          "checkpoint_written")
ITERS = 30
KILLS = 24


def _session(run_dir: Path, cache: Path, kill_at: str | None, kill_after_s: float | None) -> str:
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    env.pop("ARL_KILL_AT", None)
    if kill_at:
        env["ARL_KILL_AT"] = kill_at
    proc = subprocess.Popen([sys.executable, str(DRIVER), str(run_dir), str(cache), "ppo_edits", str(ITERS)], env=env,
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


def test_twenty_four_kills_of_the_controller_change_nothing(tmp_path: Path, smoke_cache: Path) -> None:
    reference = tmp_path / "reference"
    assert _session(reference, smoke_cache, None, None) == "done"

    run_dir, rng, kills, sessions = tmp_path / "run", random.Random(3), Counter(), 0
    while sum(kills.values()) < KILLS:
        sessions += 1
        assert sessions < 4 * KILLS, f"the campaign finished before {KILLS} kills: {dict(kills)}"
        if sessions % 3 == 0:  # from outside: start-up, a proposal, a git commit, a ledger write, anything
            outcome = _session(run_dir, smoke_cache, None, rng.uniform(1.0, 4.0))
        else:
            point = POINTS[sessions % len(POINTS)]
            outcome = _session(run_dir, smoke_cache, f"{point}:{rng.randint(1, 3)}", None)
            point = f"failpoint {point}"
        if outcome != "done":
            kills[outcome if outcome == "outside" else point] += 1
    assert _session(run_dir, smoke_cache, None, None) == "done"

    print(f"controller kills: {dict(kills)} in {sessions} sessions")
    assert_campaign_invariants(run_dir, ITERS)
    assert _outcomes(run_dir) == _outcomes(reference)
    mine = torch.load(run_dir / "agent" / "checkpoint.pt", weights_only=True)
    theirs = torch.load(reference / "agent" / "checkpoint.pt", weights_only=True)
    assert mine["updates"] == theirs["updates"] >= 3
    for name, tensor in theirs["state"]["learner"]["network"].items():
        assert torch.equal(mine["state"]["learner"]["network"][name], tensor), name
