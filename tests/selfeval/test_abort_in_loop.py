"""Early abort through the loop and the real runner: a doomed candidate is stopped, rewarded from its prediction."""

from __future__ import annotations

from pathlib import Path

from autoresearch_rl.agent.protocol import Proposal, SearchState, Transition
from autoresearch_rl.target.params import apply_params
from autoresearch_rl.campaign import Campaign, RunnerExecutor
from autoresearch_rl.decision import NoiseConfig
from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger import Ledger
from autoresearch_rl.loop import LoopConfig, ResearchLoop
from autoresearch_rl.oracle import OracleConfig
from autoresearch_rl.report import write_report
from autoresearch_rl.selfeval.abort import AbortConfig
from autoresearch_rl.target import template_source
from autoresearch_rl.target.edits import knobs_of, parse_source

SMALL, _ = apply_params(template_source(), {"DEPTH": 1, "BATCH_SIZE": 1})  # many progress lines in a 3 s budget


class LearningRateTimes100:
    """Proposes the base with every learning rate x100: a candidate that is sure to lose."""

    name = "lr-x100"

    def propose(self, state: SearchState) -> Proposal:
        knobs = knobs_of(parse_source(state.base_source))
        params = {name: knobs[name].value * 100 for name in knobs if name.endswith("_LR")}
        return Proposal(operator="config", arg="", kind="config", params=params)

    def observe(self, transition: Transition) -> None:
        self.seen = transition


def test_a_doomed_candidate_is_aborted_before_half_its_budget_and_rewarded_from_its_prediction(
        tmp_path: Path, smoke_cache: Path) -> None:
    proposer = LearningRateTimes100()
    with Campaign.open(tmp_path / "run", "cpu-smoke", smoke_cache) as campaign:
        campaign.executor = RunnerExecutor(campaign.preset, campaign.cache_dir, campaign.manifest_path, smoke=False)
        config = LoopConfig(noise=NoiseConfig(calibration_seeds=2), oracle=OracleConfig(max_iters=1),
                            smoke_check=False, abort=AbortConfig(shadow_probability=0.0))
        ResearchLoop(campaign, proposer, config, base_source=SMALL).run()
        summary = campaign.summary()
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        rows = ledger.experiments()
        meta = ledger.meta()
    candidate = next(r for r in rows if r.role == "candidate")
    assert candidate.status is Status.ABORTED, candidate.error
    assert candidate.summary["aborted_at_fraction"] < 0.5 and candidate.summary["reward_from_prediction"]
    assert candidate.summary["curve"]
    assert -5.0 <= candidate.reward < 0  # from the predicted val_bpb (clipped like any reward)
    assert proposer.seen.status is Status.ABORTED and proposer.seen.reward == candidate.reward
    assert meta["incumbent"]["exp_id"] != candidate.id
    assert summary["early_abort"]["aborted"] == 1 and summary["early_abort"]["saved_hours"] > 0

    write_report(tmp_path / "run", heldout=False)
    assert (tmp_path / "run" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "1 aborted" in (tmp_path / "run" / "selfeval.md").read_text()
