"""Hostile candidates (tests/runner/candidates/hostile/, one file each): each is contained and recorded.

Sandbox-dependent ones run twice: under bubblewrap (skipped where it does not work) and with no
sandbox at all (the fallback every machine has), asserting what each level enforces and that the
record says what was not enforced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

import autoresearch_rl
from autoresearch_rl.env import integrity
from autoresearch_rl.env.data import dataset_dir
from autoresearch_rl.env.presets import Preset
from autoresearch_rl.experiment import ExperimentRecord, Status
from autoresearch_rl.runner import RunnerConfig, run_experiment
from autoresearch_rl.runner import cgroup as cgroup_mod
from autoresearch_rl.runner import sandbox as sb
from autoresearch_rl.runner.process import Limits

HOSTILE = Path(__file__).parent / "candidates" / "hostile"
CANDIDATES = Path(__file__).parent / "candidates"


def _bwrap_or_skip(level: str) -> str:
    if level != "none" and sb.probe(level)[0] is None:
        pytest.skip(f"sandbox {level} unavailable here: {sb.probe(level)[1]}")
    return level


@pytest.fixture(params=["bwrap", "none"])
def level(request: pytest.FixtureRequest) -> str:
    return _bwrap_or_skip(request.param)


def run(name: str, tmp_path: Path, preset: Preset, cache: Path, level: str = "auto", *, source: str | None = None,
        limits: Limits | None = None, **config: object) -> ExperimentRecord:
    cfg = RunnerConfig(sandbox=level, limits=limits or Limits(), **config)  # type: ignore[arg-type]
    text = source if source is not None else (HOSTILE / name).read_text()
    return run_experiment(text, tmp_path / "ws", preset, cache, config=cfg)


def survivors(workspace: Path, pid_files: tuple[str, ...] = ()) -> list[int]:
    """Processes still working in the workspace, or named in its pid files."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd").startswith(str(workspace)):
                    alive.append(int(entry.name))
            except OSError:
                continue
    for name in pid_files:
        pid = int((workspace / name).read_text())
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            if state not in ("Z", "X") and os.readlink(f"/proc/{pid}/cwd").startswith(str(workspace)):
                alive.append(pid)
        except OSError:
            pass
    return alive


def assert_no_survivors(record: ExperimentRecord, pid_files: tuple[str, ...] = ()) -> None:
    workspace = Path(record.workspace)
    deadline = time.time() + 3
    while survivors(workspace, pid_files) and time.time() < deadline:
        time.sleep(0.1)
    assert not survivors(workspace, pid_files), "a process of the candidate outlived it"


# ---- resource limits ------------------------------------------------------------------------------

def test_fork_bomb_is_stopped_at_the_process_limit(level: str, tmp_path: Path, smoke_preset, smoke_cache) -> None:
    started = time.perf_counter()
    record = run("fork_bomb.py", tmp_path, smoke_preset, smoke_cache, level, limits=Limits(processes=64))
    assert record.status is Status.RESOURCE_LIMIT, record.error
    assert record.error.startswith("process limit")
    assert time.perf_counter() - started < 20
    assert_no_survivors(record)


def test_fork_bomb_is_stopped_by_the_watchdog_without_a_cgroup(tmp_path: Path, smoke_preset, smoke_cache,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroup_mod, "_own_pids_cgroup", lambda: None)  # as in a container: no writable cgroup
    record = run("fork_bomb.py", tmp_path, smoke_preset, smoke_cache, "none", limits=Limits(processes=64))
    assert record.status is Status.RESOURCE_LIMIT, record.error
    assert "processes and threads >= 64" in record.error or "refused to fork" in record.error
    assert record.summary["peak_tasks"] < 4096  # stopped long before the bomb's own bound
    assert_no_survivors(record)


def test_memory_hog_is_killed_at_the_memory_limit(level: str, tmp_path: Path, smoke_preset, smoke_cache) -> None:
    record = run("memory_hog.py", tmp_path, smoke_preset, smoke_cache, level, limits=Limits(memory_mb=256))
    assert record.status is Status.RESOURCE_LIMIT, record.error
    assert record.error.startswith("memory limit")
    assert record.peak_memory_mb < 1024  # the hog wanted 4 GB
    assert_no_survivors(record)


def test_disk_filler_is_killed_at_the_workspace_disk_limit(level: str, tmp_path: Path, smoke_preset,
                                                           smoke_cache) -> None:
    record = run("disk_filler.py", tmp_path, smoke_preset, smoke_cache, level, limits=Limits(disk_mb=48))
    assert record.status is Status.RESOURCE_LIMIT, record.error
    assert record.error.startswith("disk limit")
    used = sum(p.stat().st_size for p in Path(record.workspace).rglob("fill-*.bin"))
    assert used < 256 * 2**20  # the filler wanted 1 GB; its temp files counted too
    assert list((Path(record.workspace) / ".tmp").glob("fill-*"))
    assert_no_survivors(record)


def test_disk_filler_is_stopped_by_the_file_size_limit(tmp_path: Path, smoke_preset, smoke_cache) -> None:
    record = run("disk_filler.py", tmp_path, smoke_preset, smoke_cache, limits=Limits(file_size_mb=8))
    assert record.status is Status.RESOURCE_LIMIT, record.error
    assert record.error.startswith("file-size limit")
    assert max(p.stat().st_size for p in Path(record.workspace).rglob("fill-*.bin")) <= 8 * 2**20


def test_fd_hoarder_is_stopped_by_the_open_file_limit(tmp_path: Path, smoke_preset, smoke_cache) -> None:
    record = run("fd_hoarder.py", tmp_path, smoke_preset, smoke_cache, limits=Limits(open_files=64))
    assert record.status is Status.RESOURCE_LIMIT, record.error
    assert record.error.startswith("open-file limit")


def test_sleeper_and_its_escaped_grandchild_die_at_the_deadline(level: str, tmp_path: Path, smoke_preset,
                                                                smoke_cache) -> None:
    preset = dataclasses.replace(smoke_preset, startup_allowance_s=1.0)  # deadline 4 s
    started = time.perf_counter()
    record = run("sleeper.py", tmp_path, preset, smoke_cache, level)
    assert record.status is Status.TIMED_OUT, record.error
    assert time.perf_counter() - started < 15
    assert_no_survivors(record, ("sleeper.pid", "escapee.pid"))


# ---- sandbox: network, file system, validation data -------------------------------------------------

@pytest.mark.parametrize("net_level", ["bwrap", "unshare", "none"])
def test_network_caller_reaches_nothing_inside_a_sandbox(net_level: str, tmp_path: Path, smoke_preset,
                                                         smoke_cache) -> None:
    _bwrap_or_skip(net_level)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(15)
    received: list[bytes] = []

    def accept() -> None:
        try:
            conn, _ = listener.accept()
            with conn:
                received.append(conn.recv(1024))
        except OSError:
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    source = (HOSTILE / "network_caller.py").read_text().replace("PORT = 9", f"PORT = {listener.getsockname()[1]}")
    record = run("network_caller.py", tmp_path, smoke_preset, smoke_cache, net_level, source=source)
    listener.close()
    thread.join(5)
    if net_level == "none":  # the fallback: not enforced, and the record says so
        assert received and received[0].startswith(b"exfiltrated")
        assert record.status is Status.NO_CHECKPOINT
        assert "network" in record.summary["unenforced"].split(",")
    else:
        assert not received
        assert record.status is Status.CRASHED  # refused (bwrap's own loopback) or unreachable (unshare: lo down)
        assert "ConnectionRefusedError" in record.error or "Network is unreachable" in record.error
        assert "network" not in record.summary["unenforced"]


@pytest.mark.parametrize("name", ["val_reader.py", "loader_patcher.py"])
def test_validation_data_is_not_readable_during_training(name: str, level: str, tmp_path: Path, smoke_preset,
                                                         smoke_cache) -> None:
    record = run(name, tmp_path, smoke_preset, smoke_cache, level)
    assert record.summary["sandbox"] == level
    if level == "bwrap":
        assert record.status is Status.CRASHED
        assert "FileNotFoundError" in record.error and "val.bin" in record.error
    else:  # the fallback trains on val; the record says val data was not protected
        assert record.status is Status.OK
        assert "val_data" in record.summary["unenforced"].split(",")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_frozen_file_tamperer_is_denied_or_refused(level: str, tmp_path: Path, smoke_preset, smoke_cache) -> None:
    # a private copy of the package and the data: without a sandbox the tamperer really writes to them
    package_root = tmp_path / "src"
    shutil.copytree(Path(autoresearch_rl.__file__).parent, package_root / "autoresearch_rl",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    shutil.copytree(dataset_dir(smoke_preset, smoke_cache), dataset_dir(smoke_preset, cache))
    manifest_path = tmp_path / "manifest.json"
    integrity.write_manifest(manifest_path, integrity.build_manifest(dataset_dir(smoke_preset, cache)))
    evaluator = package_root / "autoresearch_rl" / "env" / "evaluator.py"
    val = dataset_dir(smoke_preset, cache) / "val.bin"
    before = _digest(evaluator), _digest(val)

    config = RunnerConfig(sandbox=level, package_root=str(package_root))
    record = run_experiment((HOSTILE / "tamperer.py").read_text(), tmp_path / "ws", smoke_preset, cache,
                            manifest_path=manifest_path, config=config)
    log = Path(record.log_path).read_text()
    if level == "bwrap":  # harmless by construction: every write failed, the honest model is scored
        assert "denied: evaluator.py" in log and "denied: val.bin" in log
        assert (_digest(evaluator), _digest(val)) == before
        assert record.status is Status.OK and record.val_bpb > 1.0
    else:  # the writes landed; the controller's own check refuses to run the tampered evaluator
        assert "tampered: evaluator.py" in log
        assert record.status is Status.INTEGRITY_FAILED
        assert "autoresearch_rl/env/evaluator.py changed" in record.error
        assert "data/val.bin changed" in record.error
        assert record.val_bpb is None
        assert not (Path(record.workspace) / "eval.json").exists()


# ---- reward hacking that needs no sandbox -----------------------------------------------------------

def test_fake_summary_does_not_become_the_score(tmp_path: Path, smoke_preset, smoke_cache) -> None:
    record = run("fake_summary.py", tmp_path, smoke_preset, smoke_cache)
    assert record.status is Status.OK, record.error
    assert record.val_bpb == record.eval_details["val_bpb"] and record.val_bpb > 1.0
    assert record.summary["val_bpb"] == 0.001  # printed, kept for the curious, never used
    assert record.peak_memory_mb > 100  # measured by the runner, not the claimed 1 MB
    assert record.summary["sandbox"] == sb.select("auto").level


def test_budget_patcher_is_over_budget(tmp_path: Path, smoke_preset, smoke_cache) -> None:
    record = run("budget_patcher.py", tmp_path, smoke_preset, smoke_cache)
    assert record.status is Status.OVER_BUDGET, record.error
    assert record.val_bpb is None


def test_clock_freezer_is_killed_at_the_deadline(tmp_path: Path, smoke_preset, smoke_cache) -> None:
    preset = dataclasses.replace(smoke_preset, startup_allowance_s=3.0)  # deadline 6 s
    record = run("clock_freezer.py", tmp_path, preset, smoke_cache)
    assert record.status is Status.TIMED_OUT, record.error
    assert record.timings.total < 20


def test_future_peeking_model_is_noncausal(tmp_path: Path, smoke_preset, smoke_cache) -> None:
    record = run("", tmp_path, smoke_preset, smoke_cache, source=(CANDIDATES / "peeks_future.py").read_text())
    assert record.status is Status.NONCAUSAL and record.val_bpb is None


def test_forged_checkpoint_and_planted_verdict_are_not_trusted(tmp_path: Path, smoke_preset, smoke_cache) -> None:
    record = run("forged_checkpoint.py", tmp_path, smoke_preset, smoke_cache)
    assert record.status is Status.NO_CHECKPOINT and record.val_bpb is None


def test_evaluator_hijacker_is_flagged_and_refused_without_imports(tmp_path: Path, smoke_preset,
                                                                   smoke_cache) -> None:
    trusted = run("evaluator_hijacker.py", tmp_path / "a", smoke_preset, smoke_cache)
    assert trusted.eval_details["imported_candidate_code"] is True
    assert "score_integrity" in trusted.summary["unenforced"].split(",")  # the score rests on candidate code
    refused = run("evaluator_hijacker.py", tmp_path / "b", smoke_preset, smoke_cache, import_candidate_code=False)
    assert refused.status is Status.EVAL_FAILED and refused.val_bpb is None
    assert "state_dict checkpoints need the candidate's train.py" in refused.error


def test_a_run_again_in_its_workspace_reads_nothing_the_last_one_left(tmp_path: Path, smoke_preset, smoke_cache) -> None:
    """A run cut off by a kill is run again in its own workspace: its appended log, model and verdict are gone
    first, so a run that dies before saving a model is not scored on the last one's."""
    ws = tmp_path / "ws"
    (ws / "checkpoint").mkdir(parents=True)
    (ws / "checkpoint" / "meta.json").write_text('{"format": "stale"}')
    (ws / "train.log").write_text("step 1 | loss 1.0 | elapsed 1.0 | STALE\n")
    (ws / "eval.json").write_text('{"status": "OK", "val_bpb": 0.1}')
    record = run("", tmp_path, smoke_preset, smoke_cache, "none", source="raise SystemExit(3)\n")
    assert record.status is not Status.OK and record.val_bpb is None
    assert "STALE" not in (ws / "train.log").read_text()
    assert not (ws / "checkpoint").exists() and not (ws / "eval.json").exists()
