"""`arl run --backend ray` end to end: a campaign on a local Ray instance, a worker killed mid-experiment, resume locally."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger import Ledger

pytest.importorskip("ray")

ARL = str(Path(sys.executable).with_name("arl"))


@pytest.mark.long
def test_ray_campaign_survives_a_killed_worker_and_resumes_on_the_local_backend(tmp_path: Path) -> None:
    env = {**os.environ, "ARL_HOME": str(tmp_path / "cache"), "RAY_ADDRESS": ""}
    assert subprocess.run([ARL, "prepare", "--preset", "cpu-smoke"], env=env, capture_output=True).returncode == 0
    run_dir = tmp_path / "camp"
    log = open(tmp_path / "ray-run.log", "w")
    proc = subprocess.Popen([ARL, "run", "--preset", "cpu-smoke", "--agent", "random", "--max-iters", "3",
                             "--calibration-seeds", "2", "--backend", "ray", "--workers", "2", "--run-dir", str(run_dir),
                             "--no-early-abort"], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    killed = None
    deadline = time.time() + 240
    while killed is None and proc.poll() is None and time.time() < deadline:  # kill the first candidate's worker mid-run
        for ws in sorted((run_dir / "experiments").glob("*")) if (run_dir / "experiments").is_dir() else []:
            if int(ws.name) > 2 and (ws / "worker.json").is_file() and (ws / "train.log").is_file():
                killed = json.loads((ws / "worker.json").read_text())["pid"], int(ws.name)
                os.kill(killed[0], signal.SIGKILL)
                break
        time.sleep(0.1)
    assert proc.wait(timeout=300) == 0, (tmp_path / "ray-run.log").read_text()[-3000:]
    assert killed is not None, "no candidate was caught running"

    with Ledger.open(run_dir, create=False) as ledger:
        rows = ledger.experiments()
    lost = ledger_row = next(r for r in rows if r.id == killed[1])
    assert ledger_row.status is Status.INTERRUPTED and ledger_row.error.startswith("worker lost")
    rerun = [r for r in rows if r.retry_of == lost.id]
    assert len(rerun) == 1 and rerun[0].seed == lost.seed and rerun[0].source_hash == lost.source_hash
    candidates = [r for r in rows if r.role == "candidate" and r.status is not Status.INTERRUPTED]
    assert sorted(r.proposal["iteration"] for r in candidates) == [0, 1, 2]
    assert all(r.reward is not None for r in candidates)
    assert all(r.summary["worker"].startswith("ray:") for r in rows if r.status is not Status.INTERRUPTED)

    resumed = subprocess.run([ARL, "run", "--agent", "random", "--max-iters", "4", "--run-dir", str(run_dir)],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    with Ledger.open(run_dir, create=False) as ledger:
        candidates = [r for r in ledger.experiments() if r.role == "candidate" and r.status is not Status.INTERRUPTED]
    assert sorted(r.proposal["iteration"] for r in candidates) == [0, 1, 2, 3]
    assert "worker" not in candidates[-1].summary  # run inline this time, in the same campaign directory
