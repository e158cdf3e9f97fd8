"""The Ray backend on a local Ray instance (this machine's CPUs): jobs come back, lost workers are reported.

Ray is an optional extra: without it these tests are skipped.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from autoresearch_rl.backends import JobSpec  # noqa: E402
from autoresearch_rl.backends.base import WORKER_FILE  # noqa: E402
from autoresearch_rl.backends.ray_backend import RayBackend  # noqa: E402
from autoresearch_rl.campaign import MANIFEST_NAME, RunnerExecutor  # noqa: E402
from autoresearch_rl.env import integrity  # noqa: E402
from autoresearch_rl.env.data import Dataset  # noqa: E402
from autoresearch_rl.errors import UserError  # noqa: E402
from autoresearch_rl.experiment import ExperimentRecord, Status  # noqa: E402
from autoresearch_rl.synthetic import SyntheticLandscape  # noqa: E402
from autoresearch_rl.target import template_source  # noqa: E402


class SleepingExecutor:
    """Sleeps as many seconds as the source says, then reports OK. Pickled by value: workers cannot import tests."""

    def validate(self, source: str) -> str:
        return ""

    def execute(self, source, workspace, seed, *, env=None, abort=None) -> ExperimentRecord:
        if source == "raise":
            raise RuntimeError("the harness broke")
        time.sleep(float(source))
        return ExperimentRecord(status=Status.OK, val_bpb=1.0, seed=seed, workspace=str(workspace),
                                summary={"env": dict(env or {})})


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # One logical GPU (Ray hands out its id and sets CUDA_VISIBLE_DEVICES; nothing here touches a device).
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


def spec(tmp_path: Path, exp_id: int, source: str, **kw) -> JobSpec:
    return JobSpec(exp_id=exp_id, source=source, workspace=str(tmp_path / f"{exp_id:05d}"), seed=exp_id, **kw)


def worker_pid(workspace: str, timeout: float = 60.0) -> int:
    """The pid the job's worker wrote into its workspace once it started."""
    path = Path(workspace) / WORKER_FILE
    deadline = time.monotonic() + timeout
    while not path.is_file():
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    return json.loads(path.read_text())["pid"]


def _stat(pid: int | str) -> list[str]:
    """/proc/<pid>/stat after the command name: state, ppid, ..., start time (index 19); [] when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def descendants(root: int) -> dict[int, str]:
    """Every process below `root`, with its start time (so that a reused pid is not mistaken for it)."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        if fields := _stat(entry):
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = {}, [root]
    while stack:
        for pid in children.get(stack.pop(), []):
            if (fields := _stat(pid)) and pid not in found:
                found[pid] = fields[19]
                stack.append(pid)
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int, start: str) -> bool:
    """Still running: not gone, not a zombie waiting to be reaped, not a reused pid."""
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z" and fields[19] == start


def test_jobs_run_as_ray_tasks_and_all_come_back(tmp_path: Path) -> None:
    base = template_source()
    backend = RayBackend(SyntheticLandscape(base), slots=2)
    pending = [spec(tmp_path, i, base) for i in range(1, 5)]
    try:
        backend.submit(pending.pop(0))
        backend.submit(pending.pop(0))
        assert backend.free_slots() == 0 and backend.in_flight() == [1, 2]
        with pytest.raises(IndexError):
            backend.submit(pending[0])
        results = []
        while len(results) < 4:
            got = backend.wait(timeout=60)
            assert got, "no job finished within 60 s"
            results += got
            while pending and backend.free_slots():
                backend.submit(pending.pop(0))
    finally:
        backend.shutdown()
    assert sorted(r.spec.exp_id for r in results) == [1, 2, 3, 4]
    assert backend.in_flight() == [] and backend.free_slots() == 2
    for r in results:
        assert r.record is not None and r.record.status is Status.OK and r.lost == ""
        assert r.worker.startswith("ray:")
        assert r.worker.endswith(f":{worker_pid(r.spec.workspace)}")  # the process that wrote worker.json
        assert r.device.startswith("cpu (1 of ")
        assert r.started_at <= r.finished_at
    assert ray.is_initialized()  # the backend did not start Ray, so it left it running


def test_a_killed_worker_loses_its_job_and_the_next_job_runs(tmp_path: Path) -> None:
    backend = RayBackend(SleepingExecutor(), slots=1)
    try:
        backend.submit(spec(tmp_path, 1, "60"))
        pid = worker_pid(str(tmp_path / "00001"))
        assert backend.wait(timeout=0.1) == []
        os.kill(pid, signal.SIGKILL)
        [lost] = backend.wait(timeout=30)
        assert lost.spec.exp_id == 1 and lost.record is None and lost.lost
        assert backend.in_flight() == [] and backend.free_slots() == 1
        backend.submit(spec(tmp_path, 2, "0"))
        [done] = backend.wait(timeout=60)
    finally:
        backend.shutdown()
    assert done.spec.exp_id == 2 and done.record is not None and done.record.status is Status.OK
    assert not done.worker.endswith(f":{pid}")  # a fresh worker
    assert done.record.summary["env"] == {"ARL_THREADS": "1"}  # the cores the task reserved


def test_a_gpu_task_is_pinned_to_its_gpu(tmp_path: Path) -> None:
    backend = RayBackend(SleepingExecutor(), slots=1, num_gpus=1)
    try:
        backend.submit(spec(tmp_path, 1, "0"))
        [result] = backend.wait(timeout=60)
    finally:
        backend.shutdown()
    assert result.device == "cuda:0"
    assert result.record is not None and result.record.summary["env"] == {"CUDA_VISIBLE_DEVICES": "0"}


def test_an_executor_error_comes_back_as_a_lost_job(tmp_path: Path) -> None:
    backend = RayBackend(SleepingExecutor(), slots=1)
    try:
        backend.submit(spec(tmp_path, 1, "raise"))
        [result] = backend.wait(timeout=60)
    finally:
        backend.shutdown()
    assert result.record is None and result.lost == "RuntimeError: the harness broke"
    assert result.worker.startswith("ray:")


def test_shutdown_with_cancel_kills_running_jobs(tmp_path: Path) -> None:
    backend = RayBackend(SleepingExecutor(), slots=2)
    backend.submit(spec(tmp_path, 1, "60"))
    backend.submit(spec(tmp_path, 2, "60"))
    pids = [worker_pid(str(tmp_path / f"{i:05d}")) for i in (1, 2)]
    started = time.monotonic()
    backend.shutdown(cancel=True)
    assert time.monotonic() - started < 15
    assert backend.in_flight() == []
    deadline = time.monotonic() + 10
    while any((_stat(p) or ["gone"])[0] not in ("Z", "gone") for p in pids):  # gone or a zombie: not running
        assert time.monotonic() < deadline, "a cancelled worker is still running"
        time.sleep(0.1)


def _runner(smoke_preset, smoke_cache: Path, tmp_path: Path) -> RunnerExecutor:
    manifest_path = tmp_path / MANIFEST_NAME
    integrity.write_manifest(manifest_path, integrity.build_manifest(Dataset.open(smoke_preset, smoke_cache).root))
    return RunnerExecutor(smoke_preset, cache_dir=smoke_cache, manifest_path=manifest_path, smoke=False)


def test_the_real_runner_trains_and_scores_through_ray(tmp_path: Path, smoke_preset, smoke_cache: Path) -> None:
    backend = RayBackend(_runner(smoke_preset, smoke_cache, tmp_path), slots=1)
    try:
        backend.submit(spec(tmp_path, 1, template_source()))
        [result] = backend.wait(timeout=120)
    finally:
        backend.shutdown()
    assert result.record is not None, result.lost
    assert result.record.status is Status.OK, result.record.error + result.record.log_tail
    assert result.record.val_bpb is not None and result.record.val_bpb > 0


def test_a_killed_worker_leaves_no_candidate_running(tmp_path: Path, smoke_preset, smoke_cache: Path) -> None:
    backend = RayBackend(_runner(smoke_preset, smoke_cache, tmp_path), slots=1)
    started = tmp_path / "00001" / "started"
    try:
        backend.submit(spec(tmp_path, 1, "import time\nopen('started', 'w').close()\ntime.sleep(120)\n"))
        pid = worker_pid(str(tmp_path / "00001"))
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline, "the candidate never started"
            time.sleep(0.05)
        below = descendants(pid)  # the candidate: its sandbox, its python
        assert any(b"train.py" in _cmdline(p) for p in below)
        os.kill(pid, signal.SIGKILL)
        [result] = backend.wait(timeout=30)
        assert result.record is None and result.lost
        deadline = time.monotonic() + 5  # the candidate would sleep 120 s, and its deadline is 33 s away
        while any(alive(p, s) for p, s in below.items()):
            assert time.monotonic() < deadline, f"outlived their worker: {[_cmdline(p) for p, s in below.items() if alive(p, s)]}"
            time.sleep(0.1)
    finally:
        backend.shutdown()


def test_without_ray_the_user_is_told_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UserError, match=r"pip install 'autoresearch-rl\[ray\]'"):
        RayBackend(SleepingExecutor(), slots=1)


def test_a_request_no_node_can_meet_is_refused() -> None:
    with pytest.raises(UserError, match="no Ray node has 1 CPUs and 2 GPUs"):
        RayBackend(SleepingExecutor(), slots=1, num_gpus=2)
