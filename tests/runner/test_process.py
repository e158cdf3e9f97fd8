"""run_with_deadline and its limits on plain commands (no torch): kills reach every process, outputs are not trusted."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from autoresearch_rl.runner import cgroup as cgroup_mod
from autoresearch_rl.runner import runner
from autoresearch_rl.runner.process import Limits, run_with_deadline

ESCAPER = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open("escapee.pid", "w").write(str(os.getpid()))
        time.sleep(120)
    os._exit(0)
time.sleep(float(sys.argv[1]))
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("cgroup", [True, False])
@pytest.mark.parametrize("lifetime_s", [1.0, 30.0])  # exits normally / killed at the deadline
def test_a_process_that_left_the_group_dies_with_the_candidate(tmp_path: Path, cgroup: bool, lifetime_s: float,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if not cgroup:
        monkeypatch.setattr(cgroup_mod, "_own_pids_cgroup", lambda: None)
    started = time.perf_counter()
    outcome = run_with_deadline([sys.executable, "-c", ESCAPER, str(lifetime_s)], cwd=tmp_path, env=dict(os.environ),
                                log_path=tmp_path / "log", deadline_s=3.0, kill_grace_s=0.5)
    assert outcome.timed_out is (lifetime_s > 3)
    assert time.perf_counter() - started < 10
    escapee = int((tmp_path / "escapee.pid").read_text())
    deadline = time.time() + 3
    while _alive(escapee) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(escapee), "the setsid() grandchild survived"


def test_peak_memory_covers_the_whole_tree(tmp_path: Path) -> None:
    script = ("import os, time\nif os.fork() == 0:\n    b = bytearray(200 * 2**20)\n    time.sleep(1.5)\n"
              "    os._exit(0)\nos.wait()\n")
    outcome = run_with_deadline([sys.executable, "-c", script], cwd=tmp_path, env=dict(os.environ),
                                log_path=tmp_path / "log", deadline_s=20.0)
    assert outcome.returncode == 0 and outcome.violation is None
    assert outcome.peak_rss_mb > 200  # the child's memory, which the parent's wait4 rusage never shows


def test_stale_cgroups_of_a_dead_controller_are_reaped() -> None:
    parent = cgroup_mod._own_pids_cgroup()
    if parent is None:
        pytest.skip("no writable pids cgroup here")
    dead = 2**22 + 7  # above pid_max: no such controller
    (parent / f"arl-{dead}-0").mkdir()
    assert cgroup_mod.reap_stale_cgroups() >= 1
    assert not (parent / f"arl-{dead}-0").exists()


def test_a_planted_verdict_is_not_read_when_the_evaluator_dies(tmp_path: Path, smoke_preset, smoke_cache) -> None:
    (tmp_path / "eval.json").write_text(json.dumps({"status": "OK", "val_bpb": 0.01}))  # left by the candidate
    config = runner.RunnerConfig(python="/bin/false", sandbox="none")  # an evaluator that dies without a word
    verdict, _ = runner._evaluate(tmp_path, smoke_preset, smoke_cache, None, config, dict(os.environ))
    assert verdict["status"] == "EVAL_FAILED"
    assert not (tmp_path / "eval.json").exists()


def test_default_limits_are_finite_except_address_space() -> None:
    limits = Limits()
    assert limits.memory_mb and limits.processes and limits.disk_mb and limits.file_size_mb and limits.open_files
    assert limits.address_space_mb is None  # CUDA maps huge virtual ranges
