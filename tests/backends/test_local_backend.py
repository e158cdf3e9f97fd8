"""Local slots and the asynchronous loop: several experiments in flight, every one accounted for once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from autoresearch_rl.agent.factory import make_proposer
from autoresearch_rl.backends import JobSpec, make_backend
from autoresearch_rl.backends.local import InlineBackend, LocalBackend, local_slots
from autoresearch_rl.campaign import Campaign
from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import ExperimentRecord, Status
from autoresearch_rl.ledger import CandidateHistory, Ledger
from autoresearch_rl.loop import LoopConfig, ResearchLoop
from autoresearch_rl.oracle import OracleConfig
from autoresearch_rl.synthetic import SyntheticLandscape
from autoresearch_rl.target import template_source
from autoresearch_rl.target.space import ActionSpace

BASE = template_source()
SPACE = ActionSpace.for_source(BASE)


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


def run_async(tmp_path: Path, cache: Path, executor, workers: int, iters: int, agent: str = "ppo_edits") -> ResearchLoop:
    with Campaign.open(tmp_path / "run", "cpu-smoke", cache) as campaign:
        campaign.executor = executor
        backend = LocalBackend(executor, local_slots(workers, "cpu", cpu_count=2, gpu_count=0))
        loop = ResearchLoop(campaign, make_proposer(agent, BASE, SPACE, seed=3),
                            LoopConfig(oracle=OracleConfig(max_iters=iters), smoke_check=False), base_source=BASE,
                            backend=backend)
        loop.run()
    return loop


def assert_async_invariants(run_dir: Path, iterations: int) -> None:
    with Ledger.open(run_dir, create=False) as ledger:
        rows = ledger.experiments()
        meta = ledger.meta()
    assert not [r for r in rows if r.status is Status.RUNNING]
    candidates = [r for r in rows if r.role == "candidate" and r.status is not Status.INTERRUPTED]
    assert len(candidates) == iterations  # max_iters counts proposals in flight: no overshoot
    assert all(r.reward is not None for r in candidates)
    assert sorted(r.proposal["iteration"] for r in candidates) == list(range(iterations))  # each proposal once
    assert len({r.seed for r in candidates}) == iterations
    retries = Counter(r.retry_of for r in rows if r.retry_of is not None)
    assert all(n == 1 for n in retries.values())
    kept = [r for r in candidates if r.status is Status.KEPT]
    incumbent = meta["incumbent"]
    if kept:
        assert incumbent["exp_id"] in {r.id for r in kept}
    assert incumbent["val_bpb"] <= meta["baseline_mean"]
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


@pytest.mark.parametrize("agent", ["ppo_edits", "ppo", "random", "tpe"])
def test_async_loop_with_two_workers_accounts_for_every_experiment(agent: str, tmp_path: Path,
                                                                   smoke_cache: Path) -> None:
    executor = Staggered(SyntheticLandscape(BASE))
    run_async(tmp_path, smoke_cache, executor, workers=2, iters=14, agent=agent)
    assert executor.peak == 2
    assert_async_invariants(tmp_path / "run", 14)
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        rows = ledger.experiments()
        running_together = [r for r in rows if r.role == "candidate" and r.summary.get("worker") == "local:1"]
        assert running_together, "both slots ran candidates"
        assert all("shared by 2 slots" in r.summary["device"] for r in rows)
        if agent == "ppo_edits":
            versions = [r.proposal["info"]["policy_version"] for r in rows if r.role == "candidate"]
            assert versions == sorted(versions) and versions[-1] >= 1  # recorded with each proposal; it learned


@pytest.mark.parametrize("iters", [1, 3])
def test_two_free_slots_never_start_proposals_past_the_budget(iters: int, tmp_path: Path, smoke_cache: Path) -> None:
    """Both slots free at once (end of calibration, a candidate answered from the ledger): the oracle is asked
    before each new proposal, so the budget is not overshot (CI once saw 15 candidates for max_iters=14)."""
    run_async(tmp_path, smoke_cache, Staggered(SyntheticLandscape(BASE)), workers=2, iters=iters, agent="greedy")
    assert_async_invariants(tmp_path / "run", iters)


def test_async_campaign_resumes_on_one_worker(tmp_path: Path, smoke_cache: Path) -> None:
    run_async(tmp_path, smoke_cache, Staggered(SyntheticLandscape(BASE)), workers=2, iters=6)
    with Campaign.open(tmp_path / "run", "cpu-smoke", smoke_cache) as campaign:
        campaign.executor = SyntheticLandscape(BASE)
        ResearchLoop(campaign, make_proposer("ppo_edits", BASE, SPACE, seed=3),
                     LoopConfig(oracle=OracleConfig(max_iters=10), smoke_check=False), base_source=BASE).run()
    assert_async_invariants(tmp_path / "run", 10)


class LosesWorkers(Staggered):
    """Its worker 'dies' (raises) on the first run of every third proposal: those are re-run."""

    def __init__(self, inner: SyntheticLandscape) -> None:
        super().__init__(inner)
        self.seen: set[int] = set()

    def execute(self, source: str, workspace: Path, seed: int, *, env=None, abort=None) -> ExperimentRecord:
        if seed % 3 == 0 and seed not in self.seen:
            self.seen.add(seed)
            raise ConnectionError("worker node went away")
        return super().execute(source, workspace, seed, env=env, abort=abort)


def test_lost_workers_mark_the_run_interrupted_and_rerun_it(tmp_path: Path, smoke_cache: Path) -> None:
    run_async(tmp_path, smoke_cache, LosesWorkers(SyntheticLandscape(BASE)), workers=2, iters=12, agent="random")
    assert_async_invariants(tmp_path / "run", 12)
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        rows = ledger.experiments()
    lost = [r for r in rows if r.status is Status.INTERRUPTED]
    assert lost and all(r.error.startswith("worker lost: ConnectionError") for r in lost)
    reruns = {r.retry_of: r for r in rows if r.retry_of is not None}
    for r in lost:
        if r.role == "candidate":  # the same proposal, source and seed again, linked to the lost run
            assert reruns[r.id].seed == r.seed and reruns[r.id].source_hash == r.source_hash
        else:  # a lost calibration run is replaced by one with the same seed
            assert any(o.role == r.role and o.seed == r.seed and o.status.scored for o in rows)
