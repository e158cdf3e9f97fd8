"""`arl run`, `arl status`, `arl report` end to end through the real console script and the real runner (cpu-smoke)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoresearch_rl.campaign import Campaign
from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger import Ledger

ARL = str(Path(sys.executable).with_name("arl"))


def arl(*args: str, cache: Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARL_HOME": str(cache)}
    return subprocess.run([ARL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = tmp_path_factory.mktemp("run-cache")
    prepared = arl("prepare", "--preset", "cpu-smoke", cache=cache, cwd=cache)
    assert prepared.returncode == 0, prepared.stderr
    return cache


def test_run_three_iterations_then_status_and_report(run_cache: Path, tmp_path: Path) -> None:
    run = arl("run", "--preset", "cpu-smoke", "--agent", "ppo", "--max-iters", "3", "--calibration-seeds", "2",
              "--run-dir", "camp", cache=run_cache, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "max_iters" in run.stderr
    with Ledger.open(tmp_path / "camp", create=False) as ledger:
        rows = ledger.experiments()
    assert [r.role for r in rows if r.role == "calibration"] == ["calibration", "calibration"]
    # the default agent runs on the core loop: three runs after calibration, confirmations included
    assert sum(r.role in ("candidate", "confirmation", "remeasure") for r in rows) == 3
    candidates = [r for r in rows if r.role == "candidate"]
    decided = [r for r in candidates if r.reward is not None]
    assert decided and len(candidates) - len(decided) <= 1  # the last may still be owed its evidence at the stop
    assert all(r.status in (Status.KEPT, Status.DISCARDED, Status.ABORTED) or r.status.failed for r in decided)

    status = arl("status", "--run-dir", "camp", "--json", cache=run_cache, cwd=tmp_path)
    summary = json.loads(status.stdout)
    for key in ("iterations", "counts", "baseline_val_bpb", "best_val_bpb", "noise_sigma", "agent_updates", "stop_reason"):
        assert key in summary
    assert summary["iterations"] == 3
    # nothing kept: the best is the base train.py, its value the mean of all its runs (re-measurements too)
    assert summary["best_val_bpb"] <= summary["baseline_val_bpb"] or summary["kept"] == 0
    assert summary["stop_reason"].startswith("max_iters")

    report = arl("report", "--run-dir", "camp", cache=run_cache, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    png = tmp_path / "camp" / "progress.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    tsv = (tmp_path / "camp" / "results.tsv").read_text().splitlines()
    assert tsv[0] == "commit\tval_bpb\tmemory_gb\tstatus\tdescription"
    assert len(tsv) == 1 + sum(r.decided for r in rows)  # a candidate still owed its evidence waits for its verdict
    assert (tmp_path / "camp" / "best.diff").read_text().startswith("# baseline")
    assert "held-out test_bpb" in report.stdout  # val vs test of the baseline and the best model

    again = arl("run", "--preset", "cpu-smoke", "--agent", "ppo", "--max-iters", "3", "--calibration-seeds", "2",
                "--run-dir", "camp", cache=run_cache, cwd=tmp_path)
    assert again.returncode == 0 and "resuming" in again.stderr  # already done: stops at once, runs nothing
    with Ledger.open(tmp_path / "camp", create=False) as ledger:
        assert len(ledger.experiments()) == len(rows)


RUN_ROLES = ("candidate", "confirmation", "remeasure")


def _wait_for_running_candidate(run_dir: Path, proc: subprocess.Popen, timeout: float = 300, after: int = 0,
                                roles: tuple[str, ...] = ("candidate",)) -> int:
    """The id of the first run of one of `roles` after row `after` that is training now."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        if (run_dir / "ledger.sqlite").exists():
            with Ledger.open(run_dir, create=False) as ledger:
                running = [r for r in ledger.experiments()
                           if r.role in roles and r.status is Status.RUNNING and r.id > after]
            workspace = Path(running[0].workspace or run_dir / "experiments" / f"{running[0].id:05d}") if running else None
            # its training process is alive: the controller is waiting on it, so a signal now cuts a run
            if workspace is not None and (workspace / "train.log").exists() and _training_processes(workspace.resolve()):
                return running[0].id
        time.sleep(0.2)
    raise AssertionError(f"no run of {roles} started training in time")


def _training_processes(workspace: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(workspace):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_sigkill_mid_experiment_then_resume_accounts_for_everything(run_cache: Path, tmp_path: Path) -> None:
    args = ["run", "--preset", "cpu-smoke", "--agent", "random", "--max-iters", "2", "--calibration-seeds", "2",
            "--run-dir", "camp"]
    env = {**os.environ, "ARL_HOME": str(run_cache)}
    proc = subprocess.Popen([ARL, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        exp_id = _wait_for_running_candidate(tmp_path / "camp", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with Ledger.open(tmp_path / "camp", create=False) as ledger:
        workspace = Path(ledger.get(exp_id).workspace).resolve()
    time.sleep(1.0)
    assert not _training_processes(workspace), "the training process outlived its controller"

    resumed = arl(*args, cache=run_cache, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    with Ledger.open(tmp_path / "camp", create=False) as ledger:
        rows = ledger.experiments()
    assert [r.proposal["core_exp"] for r in rows] == list(range(len(rows)))  # each experiment of the log once
    assert ledger_row_finished(rows, exp_id)  # the killed run ran again, in its own row, with its seed
    assert not [r for r in rows if r.status in (Status.RUNNING, Status.INTERRUPTED)]
    assert sum(r.role != "calibration" for r in rows) == 2
    assert all(r.decided for r in rows if r.role == "candidate")


def test_a_campaign_of_the_per_edit_loop_and_a_retired_agent_are_one_line_errors(run_cache: Path,
                                                                                tmp_path: Path) -> None:
    with Campaign.open(tmp_path / "old", "cpu-smoke", run_cache) as campaign:  # what 0.1's loop left: rows, no events
        campaign.ledger.set_meta(package_version="0.1.0")
        campaign.ledger.start_experiment(role="candidate", source_hash="0" * 64, description="scale:LR x2", seed=1)
    old = arl("run", "--preset", "cpu-smoke", "--run-dir", "old", cache=run_cache, cwd=tmp_path)
    assert old.returncode == 2 and old.stderr.count("\n") == 1 and "autoresearch-rl 0.1.0" in old.stderr
    assert arl("status", "--run-dir", "old", cache=run_cache, cwd=tmp_path).returncode == 0  # still readable
    retired = arl("run", "--preset", "cpu-smoke", "--agent", "ppo_edits", "--run-dir", "new", cache=run_cache,
                  cwd=tmp_path)
    assert retired.returncode == 2 and retired.stderr.count("\n") == 1 and "retired" in retired.stderr
    assert not (tmp_path / "new").exists()  # refused before anything was written


@pytest.mark.long
def test_the_core_loop_resumes_after_ctrl_c_and_after_a_kill_mid_experiment(run_cache: Path, tmp_path: Path) -> None:
    """`arl run --agent evolution` runs on the core loop (events.sqlite, the ledger its projection): a run that
    Ctrl-C, then a SIGKILL, cut off is run again on resume in its own ledger row, and nothing is counted twice."""
    args = ["run", "--preset", "cpu-smoke", "--agent", "evolution", "--max-iters", "4", "--calibration-seeds", "2",
            "--run-dir", "camp"]
    env = {**os.environ, "ARL_HOME": str(run_cache)}
    cut: list[int] = []
    for stop in (signal.SIGINT, signal.SIGKILL):
        proc = subprocess.Popen([ARL, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, preexec_fn=_ctrl_c_reaches_it)
        try:
            # after the first cut, any run: a noisy machine may spend the rest of the budget on re-measurements
            exp_id = _wait_for_running_candidate(tmp_path / "camp", proc, after=cut[-1] if cut else 0,
                                                 roles=("candidate",) if not cut else RUN_ROLES)
        finally:
            proc.send_signal(stop)
            _, err = proc.communicate(timeout=60)
        cut.append(exp_id)
        if stop is signal.SIGINT:
            assert proc.returncode == 130, err
            with Ledger.open(tmp_path / "camp", create=False) as ledger:
                assert ledger.get(exp_id).status is Status.INTERRUPTED
                assert ledger.meta()["stop_rule"] == "user_interrupt"
    assert (tmp_path / "camp" / "events.sqlite").is_file()
    resumed = arl(*args, cache=run_cache, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "max_iters" in resumed.stderr
    with Ledger.open(tmp_path / "camp", create=False) as ledger:
        rows, meta = ledger.experiments(), ledger.meta()
    assert [r.proposal["core_exp"] for r in rows] == list(range(len(rows)))  # each experiment once
    assert all(ledger_row_finished(rows, exp_id) for exp_id in cut)
    assert not [r for r in rows if r.status in (Status.RUNNING, Status.INTERRUPTED)]
    assert sum(r.role != "calibration" for r in rows) == 4 and meta["stop_rule"] == "max_iters"
    again = arl(*args, cache=run_cache, cwd=tmp_path)  # already done: stops at once, runs nothing
    assert again.returncode == 0
    with Ledger.open(tmp_path / "camp", create=False) as ledger:
        assert len(ledger.experiments()) == len(rows)


def _ctrl_c_reaches_it() -> None:
    """A shell without job control starts background commands with SIGINT ignored, and Python then keeps it
    ignored: a test suite run with `&` would otherwise send its Ctrl-C to a controller that cannot hear it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ledger_row_finished(rows: list, exp_id: int) -> bool:
    row = next(r for r in rows if r.id == exp_id)
    return row.finished_at is not None and (row.val_bpb is not None or row.status.failed)


def test_run_with_bad_arguments_is_one_line_exit_2(run_cache: Path, tmp_path: Path) -> None:
    bad = arl("run", "--preset", "cpu-smoke", "--calibration-seeds", "1", "--run-dir", "camp", cache=run_cache,
              cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "calibration-seeds" in bad.stderr
    bad_z = arl("run", "--preset", "cpu-smoke", "--abort-z", "-1", "--run-dir", "camp", cache=run_cache, cwd=tmp_path)
    assert bad_z.returncode == 2 and bad_z.stderr.count("\n") == 1 and "--abort-z" in bad_z.stderr
    bad_mz = arl("run", "--preset", "cpu-smoke", "--abort-measured-z", "nan", "--run-dir", "camp", cache=run_cache,
                 cwd=tmp_path)
    assert bad_mz.returncode == 2 and bad_mz.stderr.count("\n") == 1 and "--abort-measured-z" in bad_mz.stderr
    for flag, value in (("--abort-warmup", "1"), ("--abort-every", "0")):
        bad_check = arl("run", "--preset", "cpu-smoke", flag, value, "--run-dir", "camp", cache=run_cache, cwd=tmp_path)
        assert bad_check.returncode == 2 and bad_check.stderr.count("\n") == 1 and flag in bad_check.stderr
    missing = arl("report", "--run-dir", "nowhere", cache=run_cache, cwd=tmp_path)
    assert missing.returncode == 2 and "no campaign" in missing.stderr


@pytest.mark.long
def test_two_workers_run_experiments_concurrently_and_resume_on_one(run_cache: Path, tmp_path: Path) -> None:
    run = arl("run", "--preset", "cpu-smoke", "--agent", "random", "--max-iters", "3", "--calibration-seeds", "2",
              "--workers", "2", "--run-dir", "camp", cache=run_cache, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    with Ledger.open(tmp_path / "camp", create=False) as ledger:
        rows = ledger.experiments()
    assert sum(r.role != "calibration" for r in rows) == 3  # the budget: every run after calibration
    assert all(r.reward is not None or r.status is Status.OK for r in rows if r.role == "candidate")
    trained = [r for r in rows if "worker" in r.summary]  # a configuration that cannot be written never trains
    assert {r.summary["worker"] for r in trained} == {"local:0", "local:1"}
    assert all("shared by 2 slots" in r.summary["device"] for r in trained)
    overlapping = [(a.id, b.id) for a in rows for b in rows
                   if a.id < b.id and a.created_at < b.finished_at and b.created_at < a.finished_at]
    assert overlapping, "two experiments ran at the same time"

    status = json.loads(arl("status", "--run-dir", "camp", "--json", cache=run_cache, cwd=tmp_path).stdout)
    assert status["experiments_per_hour"] > 0
    assert sorted(w["worker"] for w in status["workers"]) == ["local:0", "local:1"]
    assert all(0 < w["utilisation"] <= 1 for w in status["workers"])

    resumed = arl("run", "--agent", "random", "--max-iters", "4", "--run-dir", "camp", cache=run_cache, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert arl("report", "--run-dir", "camp", cache=run_cache, cwd=tmp_path).returncode == 0
    with Ledger.open(tmp_path / "camp", create=False) as ledger:
        later = ledger.experiments()
    assert sum(r.role != "calibration" for r in later) == 4 and [r.proposal["core_exp"] for r in later] == list(
        range(len(later)))
    workers_md = (tmp_path / "camp" / "workers.md").read_text()
    assert "| local:1 |" in workers_md and "shared by 2 slots" in workers_md


def test_sigterm_with_two_experiments_in_flight_interrupts_both_then_resume_reruns_each_once(
        run_cache: Path, tmp_path: Path) -> None:
    args = ["run", "--preset", "cpu-smoke", "--agent", "random", "--max-iters", "4", "--calibration-seeds", "2",
            "--workers", "2", "--no-smoke", "--run-dir", "camp"]
    env = {**os.environ, "ARL_HOME": str(run_cache)}
    proc = subprocess.Popen([ARL, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "camp"
    try:
        deadline = time.time() + 300
        while time.time() < deadline:  # both slots busy with candidates that are training
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            if (run_dir / "ledger.sqlite").exists():
                with Ledger.open(run_dir, create=False) as ledger:
                    running = [r for r in ledger.experiments() if r.role == "candidate" and r.status is Status.RUNNING]
                if len(running) == 2 and all((Path(r.workspace) / "train.log").exists() for r in running):
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("two candidates never trained at once")
    finally:
        proc.send_signal(signal.SIGTERM)  # a clean stop: like Ctrl-C
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "INTERRUPTED" in stderr
    for r in running:
        assert not _training_processes(Path(r.workspace).resolve())
    with Ledger.open(run_dir, create=False) as ledger:
        rows = ledger.experiments()
        assert ledger.meta()["stop_rule"] == "user_interrupt"
    assert {r.id for r in rows if r.status is Status.INTERRUPTED} == {r.id for r in running}
    assert not [r for r in rows if r.status is Status.RUNNING]

    resumed = arl(*args, cache=run_cache, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    with Ledger.open(run_dir, create=False) as ledger:
        rows = ledger.experiments()
    assert [r.proposal["core_exp"] for r in rows] == list(range(len(rows)))  # each experiment of the log once
    assert all(ledger_row_finished(rows, r.id) for r in running)  # both re-run, each in its own row
    assert not [r for r in rows if r.status in (Status.RUNNING, Status.INTERRUPTED)]
    assert sum(r.role != "calibration" for r in rows) == 4
    # decided, or scored and still owed its confirmation when the budget ran out (never kept on one run)
    assert all(r.reward is not None or r.status is Status.OK for r in rows if r.role == "candidate")
