"""Fault injection: SIGKILL the real `arl run` controller over and over during one campaign, restart it each
time, and check that nothing is lost or done twice.

The campaign is real: cpu-smoke preset, the shipped PPO agent on the core loop, the real runner
(sandbox, smoke check, training, evaluator), the event log and the ledger and git history projected
from it. Kills come from two sources, seeded:
- from outside, at a random moment (start-up, proposal, smoke check, training, evaluation, an event,
  a ledger write, a git commit: whatever the controller is doing then);
- from inside, at the named failpoints of `autoresearch_rl.faults` (ARL_KILL_AT=point:1), the
  instants between writes that a random kill rarely hits.
After the kills, one last uninterrupted run finishes the campaign and the invariants are checked.
The numbers (kills by kind and phase, restarts, experiments, lost) are printed for the record.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger import CandidateHistory, Ledger

ARL = str(Path(sys.executable).with_name("arl"))
POINTS = ("before_event", "event_recorded", "row_started", "row_committed", "row_finished", "row_decided",
          "projected")


@dataclass
class Injector:
    """Drives one campaign through repeated SIGKILLs; counts what happened."""

    run_dir: Path
    cache: Path
    max_iters: int
    seed: int
    kills: Counter = field(default_factory=Counter)  # kind -> count
    phases: Counter = field(default_factory=Counter)  # what the controller was doing when killed from outside
    restarts: int = 0
    completions: int = 0  # sessions that finished the campaign before a kill came (max_iters was raised)

    def args(self) -> list[str]:
        return ["run", "--preset", "cpu-smoke", "--agent", "ppo", "--max-iters", str(self.max_iters),
                "--calibration-seeds", "2", "--run-dir", str(self.run_dir)]

    def start(self, kill_at: str | None = None) -> subprocess.Popen:
        env = {**os.environ, "ARL_HOME": str(self.cache)}
        env.pop("ARL_KILL_AT", None)
        if kill_at:
            env["ARL_KILL_AT"] = kill_at
        self.restarts += 1
        log = open(self.run_dir.parent / f"session-{self.restarts:03d}.log", "wb")  # a file: a full pipe would stall it
        with log:
            return subprocess.Popen([ARL, *self.args()], env=env, cwd=self.run_dir.parent, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)

    def phase(self) -> str:
        """What the controller is doing, read from the newest workspace."""
        workspaces = sorted((self.run_dir / "experiments").glob("*")) if (self.run_dir / "experiments").is_dir() else []
        if workspaces:
            ws = workspaces[-1]
            if (ws / "eval.log").exists() and not (ws / "eval.json").exists():
                return "evaluation"
            if (ws / "train.log").exists() and not (ws / "eval.log").exists() and not _finished(ws):
                return "training"
        return "controller"  # start-up, proposal, smoke check, ledger/git writes, decision, policy update

    def finish(self, proc: subprocess.Popen, limit_s: float) -> str:
        """Wait for the session; 'killed' (by us), 'died' (failpoint), 'done' (campaign finished)."""
        try:
            code = proc.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            self.phases[self.phase()] += 1
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return "killed"
        if code == -signal.SIGKILL:
            return "died"
        log = (self.run_dir.parent / f"session-{self.restarts:03d}.log").read_text(errors="replace")
        assert code == 0, f"arl run failed with {code}: {log[-2000:]}"
        return "done"

    def session(self, rng: random.Random, index: int) -> None:
        named = index % 3 == 2
        point = POINTS[(index // 3) % len(POINTS)]
        proc = self.start(f"{point}:1" if named else None)
        outcome = self.finish(proc, 90.0 if named else rng.uniform(1.5, 16.0))
        if outcome == "died":
            self.kills[f"failpoint:{point}"] += 1
        elif outcome == "killed":
            self.kills["outside" if not named else f"outside (failpoint {point} not reached)"] += 1
        else:
            self.completions += 1
            self.max_iters += 2  # the campaign ended before this kill: give the next sessions more to do
        assert not _processes_in(self.run_dir), "a training or evaluation process outlived its controller"

    def run(self, kills: int) -> None:
        rng = random.Random(self.seed)
        index = 0
        while sum(self.kills.values()) < kills:
            self.session(rng, index)
            index += 1
        final = self.finish(self.start(), 900.0)
        assert final == "done"


def _finished(ws: Path) -> bool:
    return (ws / "train.log").exists() and "checkpoint_format:" in (ws / "train.log").read_text(errors="replace")


def _processes_in(run_dir: Path) -> list[int]:
    time.sleep(0.3)  # the kernel delivers PDEATHSIG asynchronously
    root, found = str(run_dir.resolve()), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd").startswith(root):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def assert_nothing_lost(run_dir: Path, iterations: int) -> dict[str, int]:
    """Every experiment of the log exactly once, finished, consistent across the ledger, git and workspaces."""
    with Ledger.open(run_dir, create=False) as ledger:
        rows = ledger.experiments()
        meta = ledger.meta()
    history = CandidateHistory(run_dir)
    assert [r.id for r in rows] == list(range(1, len(rows) + 1)), "ledger ids have gaps"
    assert [r.proposal["core_exp"] for r in rows] == list(range(len(rows))), "an experiment of the log twice"
    lost = [r.id for r in rows if r.status in (Status.RUNNING, Status.INTERRUPTED)]  # cut off and never run again
    assert not lost, f"experiments cut off by a kill and not run again: {lost}"
    assert sum(r.role != "calibration" for r in rows) == iterations and meta["stop_rule"] == "max_iters"
    candidates = [r for r in rows if r.role == "candidate"]
    assert all(r.decided and r.reward is not None for r in candidates)
    calibration = [r for r in rows if r.role == "calibration"]  # a failed one is replaced by another seed
    assert len({r.seed for r in calibration}) == len(calibration), "each calibration seed exactly once"
    assert sum(r.status.scored for r in calibration) == 2, [(r.id, r.status, r.error) for r in calibration]
    # git: each row's commit is the one pinned for it; the research branch is the recorded incumbent
    for r in rows:
        assert r.commit_sha and history.experiment_commit(r.id) == r.commit_sha, f"row {r.id}: ledger and git differ"
    assert history.incumbent() == meta["incumbent"]["sha"]
    assert not list((run_dir / "history" / ".git").glob("**/*.lock")), "a git lock was left behind"
    # workspaces belong to experiments of the log; results.tsv has every decided row in its final status
    assert {int(p.name) for p in (run_dir / "experiments").iterdir()} <= set(range(len(rows)))
    assert len((run_dir / "results.tsv").read_text().splitlines()) == 1 + sum(r.decided for r in rows)
    assert meta["projected_events"] >= len(rows)
    return {"experiments": len(rows), "candidates": len(candidates), "lost": len(lost),
            "policy_updates": int(meta.get("agent_updates", 0))}


def _report(injector: Injector, numbers: dict[str, int], seconds: float) -> str:
    return (f"fault injection: {sum(injector.kills.values())} kills ({dict(injector.kills)}), outside kills by phase "
            f"{dict(injector.phases)}, {injector.restarts} restarts, {numbers['experiments']} experiments "
            f"({numbers['candidates']} decided candidates), "
            f"lost: {numbers['lost']}, {seconds:.0f} s")


@pytest.mark.long
@pytest.mark.timeout(900)
def test_twenty_four_kills_lose_nothing(tmp_path: Path, smoke_cache: Path) -> None:
    started = time.perf_counter()
    injector = Injector(tmp_path / "camp", smoke_cache, max_iters=3, seed=8)
    injector.run(kills=24)
    numbers = assert_nothing_lost(injector.run_dir, injector.max_iters)
    print(_report(injector, numbers, time.perf_counter() - started))
    assert sum(injector.kills.values()) >= 20 and numbers["lost"] == 0


@pytest.mark.slow
@pytest.mark.timeout(7200)
@pytest.mark.skipif(not os.environ.get("ARL_SOAK"), reason="soak test: set ARL_SOAK=1 (about an hour on 2 cores)")
def test_soak_two_hundred_kills_lose_nothing(tmp_path: Path, smoke_cache: Path) -> None:
    started = time.perf_counter()
    injector = Injector(tmp_path / "camp", smoke_cache, max_iters=20, seed=int(os.environ.get("ARL_SOAK_SEED", "1")))
    injector.run(kills=200)
    numbers = assert_nothing_lost(injector.run_dir, injector.max_iters)
    print(_report(injector, numbers, time.perf_counter() - started))
    assert numbers["lost"] == 0
