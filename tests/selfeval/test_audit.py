"""The agent's self-audit against interleaved random proposals, and the oracle rule that uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoresearch_rl.agent.factory import make_proposer
from autoresearch_rl.campaign import Campaign
from autoresearch_rl.ledger import Ledger
from autoresearch_rl.loop import LoopConfig, ResearchLoop
from autoresearch_rl.oracle import AgentBelowRandom, CampaignProgress, OracleConfig
from autoresearch_rl.selfeval.audit import AuditSummary, is_audit, p_better
from autoresearch_rl.synthetic import SyntheticLandscape
from autoresearch_rl.target import template_source
from autoresearch_rl.target.space import ActionSpace

BASE = template_source()


def test_audit_coin_is_deterministic_and_has_the_asked_rate() -> None:
    picks = [is_audit(7, i, 0.1) for i in range(4000)]
    assert picks == [is_audit(7, i, 0.1) for i in range(4000)]
    assert 0.08 < sum(picks) / len(picks) < 0.12
    assert not any(is_audit(7, i, 0.0) for i in range(100))


def test_posterior_comparison() -> None:
    assert p_better(5, 10, 5, 10) == pytest.approx(0.5, abs=0.02)
    assert p_better(30, 100, 2, 100) > 0.999
    assert p_better(1, 100, 10, 40) < 0.001


def _progress(summary: AuditSummary) -> CampaignProgress:
    return CampaignProgress(iterations=summary.agent_n + summary.random_n, elapsed_hours=1.0, device_hours=1.0,
                            improvement_iterations=(), audit=summary)


def test_oracle_stops_an_agent_credibly_worse_than_random() -> None:
    rule = AgentBelowRandom(min_random=20, confidence=0.95)
    worse = AuditSummary(200, 2, 25, 8, -1.0, 0.5, p_better(2, 200, 8, 25))
    assert rule.check(_progress(worse)).rule == "audit"
    too_few = AuditSummary(200, 2, 10, 5, -1.0, 0.5, p_better(2, 200, 5, 10))
    assert rule.check(_progress(too_few)) is None
    level = AuditSummary(200, 20, 25, 3, 0.0, 0.0, p_better(20, 200, 3, 25))
    assert rule.check(_progress(level)) is None


def test_loop_interleaves_random_proposals_and_reports_the_audit(tmp_path: Path, smoke_cache: Path) -> None:
    space = ActionSpace.for_source(BASE)
    proposer = make_proposer("ppo", BASE, space, seed=2)
    with Campaign.open(tmp_path / "run", "cpu-smoke", smoke_cache) as campaign:
        campaign.executor = SyntheticLandscape(BASE)
        loop = ResearchLoop(campaign, proposer, LoopConfig(oracle=OracleConfig(max_iters=30), smoke_check=False,
                                                           audit_fraction=0.3), base_source=BASE)
        loop.run()
        summary = loop.view.audit_summary()
        status = campaign.summary()
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        candidates = [r for r in ledger.experiments() if r.role == "candidate"]
    audited = [r for r in candidates if r.proposal.get("audit")]
    assert audited and len(audited) == sum(is_audit(0, i, 0.3) for i in range(30))
    assert all("obs" not in r.proposal["info"] for r in audited)  # random's, not the policy's
    # the default agent proposes configurations of train.py: so does its auditor, so that a kept audit
    # proposal stays a configuration the agent can see and build on
    assert all(r.proposal["params"] is not None and r.proposal["info"]["agent"] == "random" for r in audited)
    assert summary is not None and summary.random_n == len(audited) and summary.agent_n == 30 - len(audited)
    assert status["audit"]["random_n"] == len(audited)
    assert "audit: agent improved" in summary.line()
