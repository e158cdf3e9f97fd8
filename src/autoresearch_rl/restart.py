"""What a controller started on an existing run directory checks and repairs before it schedules anything.

A campaign belongs to the agent that started it (its policy checkpoint and audit fraction are that
agent's), and git follows the ledger: a kill between the keep decision and the branch update leaves
the branch behind, and it is moved here. Both are idempotent, so any number of restarts is safe.
"""

from __future__ import annotations

import logging
from pathlib import Path

from autoresearch_rl.agent.factory import RENAMED_PPO
from autoresearch_rl.campaign_view import incumbent_of
from autoresearch_rl.errors import UserError
from autoresearch_rl.ledger import CandidateHistory, Ledger

log = logging.getLogger(__name__)


def recorded_agent(ledger: Ledger) -> str | None:
    """The agent that runs this campaign. Campaigns of earlier versions name the per-action learner "ppo"
    (now `ppo_edits`); its proposals are recognisable by the observation they carry."""
    recorded = ledger.meta().get("agent")
    if recorded == RENAMED_PPO[0] and any("obs" in (r.proposal.get("info") or {}) for r in ledger.experiments()):
        return RENAMED_PPO[1]
    return recorded


def claim_agent(ledger: Ledger, run_dir: Path, agent: str, seed: int, audit_fraction: float) -> float:
    """Record the agent on a new campaign; refuse another agent on an old one. The audit fraction in force."""
    meta = ledger.meta()
    if meta.get("loop") == "core":
        raise UserError(f"campaign {run_dir} runs on the core loop (its ledger is a projection of events.sqlite); "
                        "resume it with the script that started it, or use another --run-dir")
    recorded = recorded_agent(ledger)
    audit_fraction = float(meta.get("audit_fraction", audit_fraction))  # fixed when the campaign started
    if recorded is None:
        ledger.set_meta(agent=agent, campaign_seed=seed, audit_fraction=audit_fraction)
    elif recorded != agent:
        raise UserError(f"campaign {run_dir} was run by agent {recorded!r}, not {agent!r}; "
                        f"pass --agent {recorded} to resume it or use another --run-dir")
    elif recorded != meta.get("agent"):
        ledger.set_meta(agent=recorded)  # the legacy name, written once under today's
    return audit_fraction


def reconcile_incumbent(ledger: Ledger, history: CandidateHistory) -> None:
    """Move the research branch to the ledger's incumbent if a kill left it elsewhere."""
    sha = incumbent_of(ledger.meta()).sha
    current = history.incumbent()
    if current != sha:
        calibration_commits = {r.commit_sha for r in ledger.experiments() if r.role in ("calibration", "baseline")}
        if current is not None and current not in calibration_commits:
            log.warning("moving the research branch to the ledger's incumbent %s", sha[:7])
        history.keep(sha)
