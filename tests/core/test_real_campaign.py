"""A train.py campaign on the core loop: configurations written as code, run on a backend, durable like the
simulated ones; lost workers are retried, configurations that cannot be written are failed edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoresearch_rl.backends.base import JobResult, JobSpec
from autoresearch_rl.backends.local import InlineBackend, LocalBackend, local_slots
from autoresearch_rl.backends.workers import training_seed
from autoresearch_rl.core.events import Crashed, Proposed, Scored, to_json
from autoresearch_rl.core.state import fold
from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger.event_store import SQLiteEventStore
from autoresearch_rl.ledger.history import CandidateHistory
from autoresearch_rl.real_campaign import real_campaign
from autoresearch_rl.synthetic import LandscapeConfig, SyntheticLandscape
from autoresearch_rl.target import template_source
from autoresearch_rl.target.edits import EditError
from autoresearch_rl.target.grid import train_py_space
from autoresearch_rl.target.params import apply_params

BASE = template_source()


def executor(seed: int = 0) -> SyntheticLandscape:
    """A seeded stand-in for training that reads the candidate train.py (milliseconds per run)."""
    return SyntheticLandscape(BASE, LandscapeConfig(seed=seed))


def render(config) -> str:
    space, _ = train_py_space(BASE)
    return apply_params(BASE, space.values(config))[0]


@pytest.mark.parametrize("agent", ("evolution", "ppo"))
def test_durable_and_in_memory_train_py_campaigns_make_the_same_decisions(agent: str, tmp_path: Path) -> None:
    memory = real_campaign(BASE, agent, 1, 30, InlineBackend(executor(1)), validate=False)
    memory.run()
    durable = real_campaign(BASE, agent, 1, 30, InlineBackend(executor(1)), run_dir=tmp_path, validate=False)
    durable.run()
    assert [to_json(e) for e in durable.c.store.events()] == [to_json(e) for e in memory.c.store.events()]
    assert memory.state.iterations == 30 and memory.state.edits


def test_each_run_trains_the_configuration_written_as_code_with_a_seed_of_its_measurement(tmp_path: Path) -> None:
    land = executor(2)
    loop = real_campaign(BASE, "random", 2, 12, InlineBackend(land), validate=False)
    state = loop.run()
    nth: dict = {}
    checked = 0
    for e in state.experiments:
        seed = (2, *e.config, nth.get(e.config, 0))
        nth[e.config] = nth.get(e.config, 0) + 1
        try:
            source = render(e.config)
        except EditError:
            assert e.outcome == "crashed"
            continue
        checked += 1
        record = land.execute(source, tmp_path, training_seed(seed))
        if e.outcome == "scored":
            assert record.val_bpb == e.value
        else:
            assert not record.status.scored
    assert checked >= 10


def test_the_kept_train_py_is_committed_to_git_and_git_follows_the_log_after_a_kill(tmp_path: Path) -> None:
    loop = real_campaign(BASE, "evolution", 3, 40, InlineBackend(executor(3)), run_dir=tmp_path, validate=False)
    state = loop.run()
    kept = [e for e in state.edits if e.verdict == "kept"]
    assert kept
    history = CandidateHistory(tmp_path, file_name="train.py")
    assert history.source_at(history.incumbent()) == render(state.incumbent)
    for e in kept:
        assert history.experiment_commit(e.exp) is not None
    events = list(loop.c.store.events())
    cut = next(i for i, e in enumerate(events) if getattr(e, "verdict", None) == "kept") + 1
    fresh = tmp_path / "killed"
    store = SQLiteEventStore(fresh)  # killed after the decision event, before its git commit
    for e in events[:cut]:
        store.append(e)
    store.close()
    resumed = real_campaign(BASE, "evolution", 3, 40, InlineBackend(executor(3)), run_dir=fresh, validate=False)
    assert CandidateHistory(fresh, file_name="train.py").experiment_commit(events[cut - 1].exp) is not None
    resumed.run()
    assert [to_json(e) for e in resumed.c.store.events()] == [to_json(e) for e in events]


def test_two_local_slots_run_a_train_py_campaign_to_its_budget() -> None:
    backend = LocalBackend(executor(4), local_slots(2, device="cpu"))
    try:
        state = real_campaign(BASE, "evolution", 4, 16, backend, validate=False).run()
    finally:
        backend.shutdown()
    assert state.iterations == 16 and all(e.outcome != "pending" for e in state.experiments)
    assert all(e.verdict not in (None, "confirm") for e in state.edits)


class Losing(InlineBackend):
    """Loses the worker of experiment `exp` the first `times` times it runs."""

    def __init__(self, inner, exp: int, times: int) -> None:
        super().__init__(inner)
        self.exp, self.times = exp, times

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        results = super().wait(timeout)
        out = []
        for r in results:
            if r.spec.exp_id == self.exp and self.times > 0:
                self.times -= 1
                r = JobResult(r.spec, None, "inline", "cpu", r.started_at, r.finished_at, lost="node died")
            out.append(r)
        return out


def test_a_lost_worker_is_sent_again_and_one_lost_three_times_is_a_crash() -> None:
    once = real_campaign(BASE, "random", 5, 6, Losing(executor(5), exp=4, times=1), validate=False).run()
    assert once.experiments[4].outcome == "scored"
    thrice = real_campaign(BASE, "random", 5, 6, Losing(executor(5), exp=4, times=3), validate=False)
    state = thrice.run()
    crash = next(e for e in thrice.c.store.events() if isinstance(e, Crashed) and e.exp == 4)
    assert "worker lost 3 times" in crash.reason and state.experiments[4].verdict == "failed"


def test_a_configuration_that_cannot_be_written_is_a_failed_edit_that_never_trains() -> None:
    ran: list[JobSpec] = []

    class Recording(InlineBackend):
        def submit(self, spec: JobSpec) -> None:
            ran.append(spec)
            super().submit(spec)

    state = real_campaign(BASE, "random", 6, 40, Recording(executor(6)), validate=False).run()
    unwritable = []
    for e in state.edits:
        try:
            render(e.config)
        except EditError:  # the configuration breaks a relation
            unwritable.append(e.exp)
    for exp in unwritable:
        spec = next(s for s in ran if s.exp_id == exp)
        assert spec.rejected and state.experiments[exp].outcome == "crashed"
        assert state.experiments[exp].verdict == "failed"
    assert unwritable  # random configurations break MICRO_BATCH_SIZE | BATCH_SIZE often


def test_reopening_a_campaign_with_another_base_train_py_is_a_one_line_error(tmp_path: Path) -> None:
    real_campaign(BASE, "random", 7, 2, InlineBackend(executor(7)), run_dir=tmp_path, validate=False).run()
    other = BASE.replace("DEPTH = 4", "DEPTH = 3")
    assert other != BASE
    with pytest.raises(UserError, match="another base train.py"):
        real_campaign(other, "random", 7, 2, InlineBackend(SyntheticLandscape(other)), run_dir=tmp_path)


def test_every_outcome_of_a_run_is_a_core_event() -> None:
    from autoresearch_rl.backends.workers import outcome_of
    from autoresearch_rl.core.events import Aborted
    from autoresearch_rl.experiment import ExperimentRecord, Timings

    ok = ExperimentRecord(Status.OK, val_bpb=1.5, timings=Timings(total=21.0), summary={"tokens_per_second": 3700.0})
    assert outcome_of(3, ok) == Scored(3, 1.5, cost_s=21.0, throughput=3700.0, details=ok.to_json())
    aborted = ExperimentRecord(Status.ABORTED, error="doomed", summary={"predicted_val_bpb": 1.9})
    assert outcome_of(3, aborted) == Aborted(3, "doomed", predicted=1.9, cost_s=0.0, details=aborted.to_json())
    nan = ExperimentRecord(Status.NAN, error="loss is nan")
    assert outcome_of(3, nan) == Crashed(3, "NAN: loss is nan", cost_s=0.0, details=nan.to_json())
    for record in (ok, aborted, nan):  # the run's whole record travels in the event: the ledger is its projection
        assert ExperimentRecord.from_json(record.to_json()) == record


def test_a_stop_file_stops_the_campaign_between_experiments_and_removing_it_resumes(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "STOP").write_text("")
    state = real_campaign(BASE, "random", 8, 5, InlineBackend(executor(8)), run_dir=tmp_path, validate=False).run()
    assert state.stopped is not None and state.stopped.rule == "stop_file" and state.iterations == 0
    (tmp_path / "STOP").unlink()
    loop = real_campaign(BASE, "random", 8, 5, InlineBackend(executor(8)), run_dir=tmp_path, validate=False)
    state = loop.run()
    assert state.stopped is not None and state.stopped.rule == "max_iters" and state.iterations == 5


def test_the_oracle_of_arl_run_stops_a_campaign_on_its_budget_of_hours() -> None:
    from autoresearch_rl.oracle.termination import OracleConfig

    oracle = OracleConfig(max_iters=50, max_hours=0.1, improvement_probability=0.0)  # 360 s: about 12 runs of 31 s
    state = real_campaign(BASE, "random", 9, 50, InlineBackend(executor(9)), validate=False, oracle=oracle).run()
    assert state.stopped is not None and state.stopped.rule == "max_hours"
    assert sum(e.cost_s for e in state.experiments) >= 360 and 5 <= state.iterations < 50


def test_the_scorer_draws_again_instead_of_proposing_what_would_not_run_and_resumes_exactly() -> None:
    from autoresearch_rl.core.store import MemoryStore
    from autoresearch_rl.target.grid import Runnable

    space, start = train_py_space(BASE)
    runnable = Runnable(BASE, space, start)
    loop = real_campaign(BASE, "ppo", 3, 40, InlineBackend(executor(3)), validate=False)
    state = loop.run()
    events = list(loop.c.store.events())
    refused = [e for e in events if isinstance(e, Proposed) and e.info.get("refused")]
    assert refused  # seed 3 draws 6 configurations that break MICRO_BATCH_SIZE | BATCH_SIZE or do not compose
    before = fold(())
    for event in events:
        if isinstance(event, Proposed) and event.kind == "edit":
            assert not runnable.refusal(event.config, before.measurement_counts)
        before = before.apply(event)
    assert state.iterations == 40
    assert any(type(e).__name__ == "PolicyUpdated" for e in events)  # the update learns from refused draws too
    for cut in (events.index(refused[0]) + 1, len(events) - 3):  # killed right after a refusal, and near the end
        prefix = events[:cut]
        resumed = real_campaign(BASE, "ppo", 3, 40, InlineBackend(executor(3)), validate=False)
        resumed.c.store = MemoryStore(prefix)
        resumed.state = fold(prefix)
        resumed.run()
        assert [to_json(e) for e in resumed.c.store.events()] == [to_json(e) for e in events]
