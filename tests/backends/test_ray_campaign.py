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
            if int(ws.name) >= 2 and (ws / "worker.json").is_file() and (ws / "train.log").is_file():
                killed = json.loads((ws / "worker.json").read_text())["pid"], int(ws.name)
                os.kill(killed[0], signal.SIGKILL)
                break
        time.sleep(0.1)
    assert proc.wait(timeout=300) == 0, (tmp_path / "ray-run.log").read_text()[-3000:]
    assert killed is not None, "no candidate was caught running"

    with Ledger.open(run_dir, create=False) as ledger:
        rows = ledger.experiments()
    assert [r.proposal["core_exp"] for r in rows] == list(range(len(rows)))  # each experiment once
    lost = next(r for r in rows if r.proposal["core_exp"] == killed[1])  # sent again to a live worker: scored
    assert lost.finished_at is not None and lost.status is not Status.INTERRUPTED, lost.error
    assert not [r for r in rows if r.status in (Status.RUNNING, Status.INTERRUPTED)]
    assert sum(r.role != "calibration" for r in rows) == 3
    assert all(r.reward is not None or r.status is Status.OK for r in rows if r.role == "candidate")
    trained = [r for r in rows if "worker" in r.summary]  # a configuration that cannot be written never trains
    assert len(trained) >= 3 and all(r.summary["worker"].startswith("ray:") for r in trained)

    resumed = subprocess.run([ARL, "run", "--agent", "random", "--max-iters", "4", "--run-dir", str(run_dir)],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    with Ledger.open(run_dir, create=False) as ledger:
        later = ledger.experiments()
    assert sum(r.role != "calibration" for r in later) == 4
    assert [r.proposal["core_exp"] for r in later] == list(range(len(later)))
    new = later[len(rows):]  # run inline this time, in the same campaign directory
    assert new and all("worker" not in r.summary for r in new)
