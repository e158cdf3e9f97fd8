"""The agent's self-audit against interleaved random proposals, and the oracle rule that uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoresearch_rl.campaign import Campaign, campaign_summary
from autoresearch_rl.ledger import Ledger
from autoresearch_rl.oracle import AgentBelowRandom, CampaignProgress
from autoresearch_rl.selfeval.audit import AuditSummary, audit, is_audit, p_better
from synthetic_campaign import synthetic_campaign


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


def test_arl_runs_audit_is_random_configurations_reported_in_the_status(tmp_path: Path, smoke_cache: Path) -> None:
    """`arl run --agent ppo --audit-fraction F` on the core loop: a seeded share F of the proposals are random
    configurations of the train.py (so a kept one is a configuration the agent can build on), marked in the ledger
    and compared with the agent's own in the status and report."""
    synthetic_campaign(tmp_path / "run", smoke_cache, "ppo", 30, seed=2, audit_fraction=0.3)
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        rows, meta = ledger.experiments(), ledger.meta()
        status = campaign_summary(tmp_path / "run", meta, ledger)
    candidates = [r for r in rows if r.role == "candidate"]
    audited = [r for r in candidates if r.proposal.get("audit")]
    assert 0 < len(audited) < len(candidates) and meta["audit_fraction"] == 0.3
    assert all(r.proposal["params"] and r.proposal["info"]["agent"] == "random" for r in audited)
    summary = audit(rows, float(meta.get("keep_margin") or 0.0))
    assert summary.random_n == len(audited) and summary.agent_n == len(candidates) - len(audited)
    assert status["audit"]["random_n"] == len(audited)
    assert summary.line().startswith("audit: agent")
    with Campaign.open(tmp_path / "run", None, smoke_cache, create=False):
        pass  # the campaign reopens as any other
