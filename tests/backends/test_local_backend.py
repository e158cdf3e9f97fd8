"""Local slots and the asynchronous core loop of `arl run`: several experiments in flight, each accounted for once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from autoresearch_rl.backends import JobSpec, make_backend
from autoresearch_rl.backends.local import InlineBackend, LocalBackend, local_slots
from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import ExperimentRecord, Status
from autoresearch_rl.ledger import CandidateHistory, Ledger
from autoresearch_rl.synthetic import SyntheticLandscape
from synthetic_campaign import BASE, synthetic_campaign


class Staggered:
    """The synthetic landscape, slowed down by a seed-dependent delay so results arrive out of order."""

    def __init__(self, inner: SyntheticLandscape, fail_first: int = 0) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.envs: list[dict[str, str]] = []

    def validate(self, source: str) -> str:
        return self.inner.validate(source)

    def execute(self, source: str, workspace: Path, seed: int, *, env=None, abort=None) -> ExperimentRecord:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.envs.append(dict(env or {}))
        try:
            time.sleep(0.02 + (seed % 5) * 0.03)
            return self.inner.execute(source, workspace, seed)
        finally:
            with self.lock:
                self.running -= 1


def run_async(tmp_path: Path, cache: Path, executor, workers: int, iters: int, agent: str = "ppo") -> None:
    backend = LocalBackend(executor, local_slots(workers, "cpu", cpu_count=2, gpu_count=0))
    synthetic_campaign(tmp_path / "run", cache, agent, iters, seed=3, executor=executor, backend=backend)


def assert_async_invariants(run_dir: Path, iterations: int) -> None:
    with Ledger.open(run_dir, create=False) as ledger:
        rows = ledger.experiments()
        meta = ledger.meta()
    assert [r.proposal["core_exp"] for r in rows] == list(range(len(rows)))  # each experiment of the log once
    assert not [r for r in rows if r.status in (Status.RUNNING, Status.INTERRUPTED)]
    assert sum(r.role != "calibration" for r in rows) == iterations  # runs in flight count: no overshoot
    candidates = [r for r in rows if r.role == "candidate"]
    assert all(r.decided and r.reward is not None for r in candidates)
    kept = [r for r in candidates if r.status is Status.KEPT]
    incumbent = meta["incumbent"]
    if kept:
        assert incumbent["exp_id"] in {r.id for r in kept}
    assert CandidateHistory(run_dir).incumbent() == incumbent["sha"]


def test_cpu_slots_share_the_cores_and_say_so() -> None:
    slots = local_slots(2, "cpu", cpu_count=8, gpu_count=0)
    assert [s.env["ARL_THREADS"] for s in slots] == ["4", "4"] and all(s.shared for s in slots)
    assert "shared by 2 slots" in slots[0].device


def test_gpu_slots_get_one_device_each() -> None:
    slots = local_slots(2, "cuda", gpu_count=4)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "1"] and not any(s.shared for s in slots)
    with pytest.raises(UserError, match="needs 3 GPUs"):
        local_slots(3, "cuda", gpu_count=2)


def test_one_worker_is_the_synchronous_loop() -> None:
    assert isinstance(make_backend("local", SyntheticLandscape(BASE), workers=1), InlineBackend)


def test_local_backend_runs_jobs_concurrently_and_returns_each_once(tmp_path: Path) -> None:
    executor = Staggered(SyntheticLandscape(BASE))
    backend = LocalBackend(executor, local_slots(2, "cpu", cpu_count=2, gpu_count=0))
    submitted, results = 0, []
    while len(results) < 6:
        while backend.free_slots() and submitted < 6:
            backend.submit(JobSpec(exp_id=submitted + 1, source=BASE, workspace=str(tmp_path / str(submitted)),
                                   seed=submitted))
            submitted += 1
        results += backend.wait(timeout=5)
    backend.shutdown()
    assert sorted(r.spec.exp_id for r in results) == [1, 2, 3, 4, 5, 6]
    assert executor.peak == 2 and all(e == {"ARL_THREADS": "1"} for e in executor.envs)
    assert {r.worker for r in results} == {"local:0", "local:1"} and not backend.in_flight()


@pytest.mark.parametrize("agent", ["ppo", "random", "tpe"])
def test_async_loop_with_two_workers_accounts_for_every_experiment(agent: str, tmp_path: Path,
                                                                   smoke_cache: Path) -> None:
    executor = Staggered(SyntheticLandscape(BASE))
    run_async(tmp_path, smoke_cache, executor, workers=2, iters=14, agent=agent)
    assert executor.peak == 2
    assert_async_invariants(tmp_path / "run", 14)
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        rows = ledger.experiments()
    assert {r.summary.get("worker") for r in rows if r.role == "candidate"} == {"local:0", "local:1"}
    assert all("shared by 2 slots" in r.summary["device"] for r in rows)


@pytest.mark.parametrize("iters", [1, 3])
def test_two_free_slots_never_start_proposals_past_the_budget(iters: int, tmp_path: Path, smoke_cache: Path) -> None:
    """Both slots free at once (end of calibration): the stopper is asked before each new proposal, so the
    budget is not overshot (CI once saw 15 candidates for max_iters=14)."""
    run_async(tmp_path, smoke_cache, Staggered(SyntheticLandscape(BASE)), workers=2, iters=iters, agent="greedy")
    assert_async_invariants(tmp_path / "run", iters)


def test_async_campaign_resumes_on_one_worker(tmp_path: Path, smoke_cache: Path) -> None:
    run_async(tmp_path, smoke_cache, Staggered(SyntheticLandscape(BASE)), workers=2, iters=6)
    synthetic_campaign(tmp_path / "run", smoke_cache, "ppo", 10, seed=3, executor=SyntheticLandscape(BASE))
    assert_async_invariants(tmp_path / "run", 10)


class LosesWorkers(Staggered):
    """Its worker 'dies' (raises) on the first run of every third seed: those are sent again."""

    def __init__(self, inner: SyntheticLandscape) -> None:
        super().__init__(inner)
        self.seen: set[int] = set()
        self.lost = 0

    def execute(self, source: str, workspace: Path, seed: int, *, env=None, abort=None) -> ExperimentRecord:
        if seed % 3 == 0 and seed not in self.seen:
            self.seen.add(seed)
            self.lost += 1
            raise ConnectionError("worker node went away")
        return super().execute(source, workspace, seed, env=env, abort=abort)


def test_lost_workers_are_sent_again_and_no_run_is_lost(tmp_path: Path, smoke_cache: Path) -> None:
    executor = LosesWorkers(SyntheticLandscape(BASE))
    run_async(tmp_path, smoke_cache, executor, workers=2, iters=12, agent="random")
    assert executor.lost > 0
    assert_async_invariants(tmp_path / "run", 12)
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        errors = [r.error or "" for r in ledger.experiments()]
    assert not [e for e in errors if "ConnectionError" in e or "lost" in e]  # the landscape's own crashes remain
