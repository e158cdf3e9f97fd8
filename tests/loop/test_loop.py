"""The loop's contract, on the synthetic landscape: every proposer, the keep rule, stop rules, resume after SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from autoresearch_rl.agent.factory import AGENTS, default_keep_rule, make_proposer
from autoresearch_rl.agent.protocol import Proposal, SearchState, Transition
from autoresearch_rl.campaign import Campaign
from autoresearch_rl.decision import KeepRule, NoiseConfig
from autoresearch_rl.experiment import ExperimentRecord, Status, Timings
from autoresearch_rl.ledger import Ledger
from autoresearch_rl.loop import LoopConfig, ResearchLoop
from autoresearch_rl.oracle import OracleConfig
from autoresearch_rl.runner.runner import PACKAGE_ROOT
from autoresearch_rl.synthetic import SyntheticLandscape
from autoresearch_rl.target import template_source
from autoresearch_rl.target.space import ActionSpace

BASE = template_source()
SPACE = ActionSpace.for_source(BASE)
DRIVER = Path(__file__).with_name("driver.py")


class Recording:
    """Wraps a proposer and remembers which experiments it was told about."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.observed: list[int] = []

    def propose(self, state: SearchState) -> Proposal:
        proposal = self.inner.propose(state)
        assert state.mask[SPACE.index(proposal.operator, proposal.arg)] if proposal.params is None else True
        return proposal

    def observe(self, transition: Transition) -> None:
        self.observed.append(transition.exp_id)
        self.inner.observe(transition)


def assert_campaign_invariants(run_dir: Path, iterations: int) -> None:
    """What must hold after any campaign, killed or not: every experiment accounted for exactly once."""
    from autoresearch_rl.ledger import CandidateHistory

    with Ledger.open(run_dir, create=False) as ledger:
        rows = ledger.experiments()
        meta = ledger.meta()
    by_id = {r.id: r for r in rows}
    assert not [r for r in rows if r.status is Status.RUNNING]
    candidates = [r for r in rows if r.role == "candidate" and r.status is not Status.INTERRUPTED]
    assert len(candidates) == iterations
    assert all(r.decided and r.reward is not None for r in candidates)
    assert [r.proposal["iteration"] for r in candidates] == list(range(iterations))
    retries = Counter(r.retry_of for r in rows if r.retry_of is not None)
    for r in rows:
        if r.status is Status.INTERRUPTED and r.role == "candidate":
            assert retries[r.id] == 1, f"interrupted experiment {r.id} must be re-run exactly once"
    for r in rows:
        if r.role == "confirmation":
            assert by_id[r.parent_id].role == "candidate"
    kept = [r for r in candidates if r.status is Status.KEPT]
    incumbent = meta["incumbent"]
    if kept:
        assert incumbent["exp_id"] == kept[-1].id
    assert CandidateHistory(run_dir).incumbent() == incumbent["sha"]
    assert incumbent["val_bpb"] <= meta["baseline_mean"]


def run_loop(tmp_path: Path, cache: Path, proposer, max_iters: int, executor=None, **config) -> tuple[ResearchLoop, object]:
    with Campaign.open(tmp_path / "run", "cpu-smoke", cache) as campaign:
        campaign.executor = executor or SyntheticLandscape(BASE)
        loop = ResearchLoop(campaign, proposer, LoopConfig(oracle=OracleConfig(max_iters=max_iters), smoke_check=False,
                                                           **config), base_source=BASE)
        decision = loop.run()
    return loop, decision


@pytest.mark.parametrize("agent", AGENTS)
def test_every_proposer_runs_through_the_same_loop(agent: str, tmp_path: Path, smoke_cache: Path) -> None:
    proposer = Recording(make_proposer(agent, BASE, SPACE, seed=1))
    _, decision = run_loop(tmp_path, smoke_cache, proposer, 12, keep=default_keep_rule(agent))
    assert decision.rule == "max_iters"
    assert_campaign_invariants(tmp_path / "run", 12)
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        decided = [r.id for r in ledger.experiments() if r.role == "candidate"]
        assert ledger.meta()["stop_rule"] == "max_iters"
        assert len([r for r in ledger.experiments() if r.role == "calibration"]) == 3
    assert proposer.observed == decided  # told about every decided candidate, once, in order


def test_ppo_updates_and_checkpoints_every_rollout(tmp_path: Path, smoke_cache: Path) -> None:
    proposer = make_proposer("ppo_edits", BASE, SPACE, seed=0)
    run_loop(tmp_path, smoke_cache, proposer, 17)
    assert proposer.updates == 2  # rollouts of 8: updates at the 9th and 17th proposals
    saved = torch.load(tmp_path / "run" / "agent" / "checkpoint.pt", weights_only=True)
    assert saved["updates"] == 2 and saved["last_exp_id"] > 0
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        assert ledger.meta()["agent_updates"] == 2


def test_proposing_never_learns_the_loop_calls_the_update(tmp_path: Path, smoke_cache: Path) -> None:
    """The PPO update is an explicit step (`update` when `ready()`), not a side effect of `propose`."""
    proposer = make_proposer("ppo_edits", BASE, SPACE, seed=0)
    run_loop(tmp_path, smoke_cache, proposer, 8)
    assert proposer.ready() and proposer.updates == 0  # a full rollout, not learned from yet
    with Campaign.open(tmp_path / "run", "cpu-smoke", smoke_cache) as campaign:
        campaign.executor = SyntheticLandscape(BASE)
        loop = ResearchLoop(campaign, proposer, LoopConfig(smoke_check=False), base_source=BASE)
        loop._load_base()
        state = loop.state()
    for _ in range(3):
        proposer.propose(state)
    assert proposer.updates == 0 and proposer.ready()
    metrics = proposer.update(state)
    assert proposer.updates == 1 and not proposer.ready() and "losses/approx_kl" in metrics


class Scripted:
    """An executor that returns val_bpb values in order: the keep rule on exact numbers."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = list(scores)

    def validate(self, source: str) -> str:
        return ""

    def execute(self, source: str, workspace: Path, seed: int, **_: object) -> ExperimentRecord:
        return ExperimentRecord(status=Status.OK, val_bpb=self.scores.pop(0), seed=seed, timings=Timings(total=1.0))


def test_seed_luck_is_confirmed_away_and_real_wins_are_kept(tmp_path: Path, smoke_cache: Path) -> None:
    # calibration 1.00/1.01/0.99 -> sigma 0.01, margin 0.02; then: a 2.5-sigma win that does not reproduce
    # (confirmation 1.001), a 5-sigma win (kept at once), a win of exactly the margin over the new incumbent
    executor = Scripted([1.00, 1.01, 0.99, 0.975, 1.001, 0.95, 0.93])
    proposer = make_proposer("random", BASE, SPACE)
    run_loop(tmp_path, smoke_cache, proposer, 3, executor=executor, keep=KeepRule(margin_sigmas=2.0))
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        rows = [r for r in ledger.experiments() if r.role != "calibration"]
        meta = ledger.meta()
    assert [(r.role, r.status) for r in rows] == [
        ("candidate", Status.DISCARDED), ("confirmation", Status.OK), ("candidate", Status.KEPT),
        ("candidate", Status.DISCARDED)]
    assert rows[1].parent_id == rows[0].id and rows[1].seed != rows[0].seed
    assert rows[0].reward == pytest.approx((1.0 - (0.975 + 1.001) / 2) / 0.01)
    assert meta["incumbent"]["val_bpb"] == pytest.approx(0.95)
    assert meta["noise_sigma"] == pytest.approx(0.01)


def test_strict_rule_keeps_the_seed_luck(tmp_path: Path, smoke_cache: Path) -> None:
    executor = Scripted([1.00, 1.01, 0.99, 0.975])
    run_loop(tmp_path, smoke_cache, make_proposer("random", BASE, SPACE), 1, executor=executor,
             keep=KeepRule(strict=True))
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        assert [r.status for r in ledger.experiments() if r.role == "candidate"] == [Status.KEPT]


def test_stop_file_ends_the_campaign_cleanly(tmp_path: Path, smoke_cache: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "STOP").touch()
    _, decision = run_loop(tmp_path, smoke_cache, make_proposer("random", BASE, SPACE), 50)
    assert decision.rule == "stop_file"
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        assert ledger.meta()["stop_rule"] == "stop_file"
        assert not [r for r in ledger.experiments() if r.role == "candidate"]


def test_failing_base_train_py_is_a_user_error(tmp_path: Path, smoke_cache: Path) -> None:
    from autoresearch_rl.errors import UserError

    class Crashing(Scripted):
        def execute(self, source: str, workspace: Path, seed: int, **_: object) -> ExperimentRecord:
            return ExperimentRecord(status=Status.CRASHED, seed=seed, error="boom")

    with pytest.raises(UserError, match="base train.py does not run"):
        run_loop(tmp_path, smoke_cache, make_proposer("random", BASE, SPACE), 3, executor=Crashing([]),
                 noise=NoiseConfig(calibration_seeds=2))


def test_resume_with_another_agent_is_refused(tmp_path: Path, smoke_cache: Path) -> None:
    from autoresearch_rl.errors import UserError

    run_loop(tmp_path, smoke_cache, make_proposer("random", BASE, SPACE), 1)
    with pytest.raises(UserError, match="--agent random"):
        run_loop(tmp_path, smoke_cache, make_proposer("greedy", BASE, SPACE), 2)


# ---- kill and resume ------------------------------------------------------------------------------

ITERS = 12


def _drive(run_dir: Path, cache: Path, agent: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": PACKAGE_ROOT}
    env.pop("ARL_KILL_AT", None)
    if kill_at:
        env["ARL_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, str(DRIVER), str(run_dir), str(cache), agent, str(ITERS)], env=env,
                          capture_output=True, text=True, timeout=240)


def _outcomes(run_dir: Path) -> list[tuple]:
    with Ledger.open(run_dir, create=False) as ledger:
        return [(r.role, r.status, r.val_bpb, r.seed, r.reward, r.proposal.get("operator"), r.proposal.get("arg"))
                for r in ledger.experiments() if r.status is not Status.INTERRUPTED]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, smoke_cache: Path) -> dict[str, Path]:
    runs = {}
    for agent in ("ppo_edits", "tpe", "ppo"):
        run_dir = tmp_path_factory.mktemp(f"reference-{agent}") / "run"
        done = _drive(run_dir, smoke_cache, agent)
        assert done.returncode == 0, done.stderr
        runs[agent] = run_dir
    return runs


@pytest.mark.parametrize(("agent", "kill_at"), [
    ("ppo_edits", "experiment_started:7"),  # mid-experiment: the row is RUNNING
    ("ppo_edits", "experiment_finished:6"),  # between ledger writes: scored, not decided
    ("ppo_edits", "proposed:9"),  # after the first PPO update, before its checkpoint
    ("ppo_edits", "checkpoint_written:1"),  # checkpoint written to a temp file, not yet in place
    ("ppo_edits", "decided:8"),  # decided in the ledger, git and the agent not yet told
    ("tpe", "before_decision:5"),
    ("ppo", "decided:6"),  # the default, a space agent: its state is the ledger's history, folded again on resume
])
def test_killed_campaign_resumes_to_the_uninterrupted_result(agent: str, kill_at: str, tmp_path: Path,
                                                             smoke_cache: Path, uninterrupted: dict[str, Path]) -> None:
    run_dir = tmp_path / "run"
    killed = _drive(run_dir, smoke_cache, agent, kill_at)
    assert killed.returncode == -9, killed.stderr
    resumed = _drive(run_dir, smoke_cache, agent)
    assert resumed.returncode == 0, resumed.stderr
    assert_campaign_invariants(run_dir, ITERS)
    assert _outcomes(run_dir) == _outcomes(uninterrupted[agent])
    if agent == "ppo_edits":
        mine = torch.load(run_dir / "agent" / "checkpoint.pt", weights_only=True)
        reference = torch.load(uninterrupted[agent] / "agent" / "checkpoint.pt", weights_only=True)
        assert mine["updates"] == reference["updates"] == 1  # continuous: the update is neither lost nor doubled
        for name, tensor in reference["state"]["learner"]["network"].items():
            assert torch.equal(mine["state"]["learner"]["network"][name], tensor), name


def test_corrupt_agent_checkpoint_is_rebuilt_from_the_ledger(tmp_path: Path, smoke_cache: Path,
                                                              uninterrupted: dict[str, Path]) -> None:
    run_dir = tmp_path / "run"
    killed = _drive(run_dir, smoke_cache, "ppo_edits", "proposed:11")
    assert killed.returncode == -9
    (run_dir / "agent" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    resumed = _drive(run_dir, smoke_cache, "ppo_edits")
    assert resumed.returncode == 0, resumed.stderr
    assert "unreadable" in resumed.stderr
    assert _outcomes(run_dir) == _outcomes(uninterrupted["ppo_edits"])


def test_a_per_action_campaign_from_before_the_rename_resumes_as_ppo_edits(tmp_path: Path,
                                                                           uninterrupted: dict[str, Path]) -> None:
    """Earlier versions recorded the per-action learner as "ppo"; `ppo` is now the meta-trained scorer.
    Such a campaign is never handed to the new agent: it resumes under `--agent ppo_edits`, checkpoint and all."""
    import shutil

    from autoresearch_rl import restart
    from autoresearch_rl.agent.checkpoint import load_checkpoint
    from autoresearch_rl.errors import UserError

    run_dir = tmp_path / "old"
    shutil.copytree(uninterrupted["ppo_edits"], run_dir)
    checkpoint = run_dir / "agent" / "checkpoint.pt"
    saved = torch.load(checkpoint, weights_only=True)
    saved["proposer"] = "ppo"
    torch.save(saved, checkpoint)
    with Ledger.open(run_dir, create=False) as ledger:
        ledger.set_meta(agent="ppo")
        with pytest.raises(UserError, match="pass --agent ppo_edits"):
            restart.claim_agent(ledger, run_dir, "ppo", 7, 0.0)
        restart.claim_agent(ledger, run_dir, "ppo_edits", 7, 0.0)
        assert ledger.meta()["agent"] == "ppo_edits"
    assert load_checkpoint(make_proposer("ppo_edits", BASE, SPACE, seed=7), checkpoint) == saved["last_exp_id"] > 0


class Repeating:
    """Proposes the same edit of the same incumbent every time (what a careless agent would do)."""

    name = "repeating"

    def propose(self, state: SearchState) -> Proposal:
        return Proposal(operator="pow2:BATCH_SIZE", arg="x2", kind="hyperparameter")

    def observe(self, transition: Transition) -> None:
        pass


def test_a_candidate_whose_code_already_ran_is_answered_from_the_ledger_not_run(tmp_path: Path,
                                                                                smoke_cache: Path) -> None:
    executor = Scripted([1.00, 1.01, 0.99, 1.02])  # calibration, then one discarded run: nothing more may run
    run_loop(tmp_path, smoke_cache, Repeating(), 3, executor=executor)
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        candidates = [r for r in ledger.experiments() if r.role == "candidate"]
    assert [r.status for r in candidates] == [Status.DISCARDED, Status.INVALID_EDIT, Status.INVALID_EDIT]
    assert all(f"same code as experiment {candidates[0].id}" in r.error for r in candidates[1:])
    assert executor.scores == []  # every score handed out was for calibration and the first candidate


class DriftingScripted(Scripted):
    """Scripted (val_bpb, tokens/s) pairs: a machine whose speed changes, as a real runner reports it."""

    def execute(self, source: str, workspace: Path, seed: int, **_: object) -> ExperimentRecord:
        value, speed = self.scores.pop(0)
        return ExperimentRecord(status=Status.OK, val_bpb=value, seed=seed, timings=Timings(total=1.0),
                                summary={"tokens_per_second": speed})


CALIBRATION = [(1.00, 1000.0), (1.01, 1010.0), (0.99, 990.0)]  # sigma 0.01, machine at ~1000 tokens/s


def test_a_faster_machine_is_not_taken_for_research_on_the_real_loop(tmp_path: Path, smoke_cache: Path) -> None:
    # candidate 1 looks 10 sigma better, but trained 30% faster: the incumbent re-runs in the same conditions
    # (0.91), the machine changed, and against that the candidate is no better; candidate 2 is judged the same way
    executor = DriftingScripted(CALIBRATION + [(0.90, 1300.0), (0.91, 1310.0), (0.905, 1290.0)])
    loop, _ = run_loop(tmp_path, smoke_cache, make_proposer("random", BASE, SPACE), 2, executor=executor)
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        rows = [r for r in ledger.experiments() if r.role != "calibration"]
        meta = ledger.meta()
    assert [(r.role, r.status) for r in rows] == [("candidate", Status.DISCARDED), ("remeasure", Status.OK),
                                                  ("candidate", Status.DISCARDED)]
    assert rows[1].parent_id == rows[0].id
    assert meta["incumbent"]["val_bpb"] == pytest.approx(1.0)  # nothing kept
    from autoresearch_rl.campaign import campaign_summary

    with Ledger.open(tmp_path / "run", create=False) as ledger:
        drift = campaign_summary(tmp_path / "run", ledger.meta(), ledger)["drift"]
    assert drift["flagged"] == 1 and drift["rebased"] == 1 and drift["since"] == rows[0].id
    from autoresearch_rl.report import write_report

    report = write_report(tmp_path / "run", heldout=False)
    assert "# drift: 1 re-measurement(s) of the incumbent (1 paired" in report.best_diff.read_text()


def test_a_calibration_run_slowed_by_a_busy_machine_is_replaced_not_taken_for_noise(tmp_path: Path,
                                                                                  smoke_cache: Path) -> None:
    # the second calibration run trained 40% slower (another job on the machine) and scored far worse: with it,
    # sigma would be 0.17 and nothing could ever be kept; without it, sigma is 0.01
    executor = DriftingScripted([(1.00, 1000.0), (1.30, 600.0), (1.01, 1010.0), (0.99, 990.0), (1.00, 1000.0)])
    run_loop(tmp_path, smoke_cache, make_proposer("random", BASE, SPACE), 1, executor=executor)
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        calibration = [r for r in ledger.experiments() if r.role == "calibration"]
        meta = ledger.meta()
    assert len(calibration) == 4 and len({r.seed for r in calibration}) == 4
    assert meta["calibration_disturbed"] == [calibration[1].id]
    assert meta["calibration_scores"] == [1.00, 1.01, 0.99] and meta["noise_sigma"] == pytest.approx(0.01)
    assert executor.scores == []  # the one candidate ran on the last pair
    from autoresearch_rl.campaign import campaign_summary

    with Ledger.open(tmp_path / "run", create=False) as ledger:
        assert campaign_summary(tmp_path / "run", ledger.meta(), ledger)["calibration_disturbed"] == [calibration[1].id]


def test_without_drift_detection_the_real_loop_keeps_the_machine_change(tmp_path: Path, smoke_cache: Path) -> None:
    executor = DriftingScripted(CALIBRATION + [(0.90, 1300.0)])
    run_loop(tmp_path, smoke_cache, make_proposer("random", BASE, SPACE), 1, executor=executor, drift=None)
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        assert [r.status for r in ledger.experiments() if r.role == "candidate"] == [Status.KEPT]


def test_a_flagged_candidate_that_loses_anyway_costs_no_extra_run(tmp_path: Path, smoke_cache: Path) -> None:
    executor = DriftingScripted(CALIBRATION + [(1.20, 600.0), (1.001, 1005.0)])  # a slow, bad candidate; a normal one
    run_loop(tmp_path, smoke_cache, make_proposer("random", BASE, SPACE), 2, executor=executor)
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        assert [(r.role, r.status) for r in ledger.experiments() if r.role != "calibration"] == [
            ("candidate", Status.DISCARDED), ("candidate", Status.DISCARDED)]
