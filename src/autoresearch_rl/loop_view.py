"""What the loop reads from its campaign: the incumbent, the proposer's state, the oracle's progress, the audit.

Reads only: each question reads the ledger (and git, for the incumbent's source) and answers through
the pure functions of `campaign_view.py`, so a resumed controller sees exactly what an uninterrupted
one saw. The loop writes; this module never does.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from autoresearch_rl import campaign_view as view
from autoresearch_rl.agent.protocol import Learner, Proposer, SearchState, Transition
from autoresearch_rl.ledger import CandidateHistory, ExperimentRow, Ledger
from autoresearch_rl.loop_config import Incumbent, LoopConfig
from autoresearch_rl.oracle import CampaignProgress
from autoresearch_rl.selfeval.audit import AuditSummary, audit
from autoresearch_rl.target.space import ActionSpace


@dataclass
class LoopView:
    ledger: Ledger
    history: CandidateHistory
    proposer: Proposer
    config: LoopConfig
    audit_fraction: float = 0.0
    base_source: str = ""
    space: ActionSpace | None = None  # set when the campaign's base train.py is loaded
    elapsed_before_s: float = 0.0  # wall clock of earlier sessions
    session_started: float = field(default_factory=time.time)

    def elapsed_s(self) -> float:
        return self.elapsed_before_s + (time.time() - self.session_started)

    @property
    def calibrated(self) -> bool:
        return self.space is not None and "noise_sigma" in self.ledger.meta()

    def incumbent(self) -> Incumbent:
        return view.incumbent_of(self.ledger.meta())

    def transitions(self, rows: list[ExperimentRow] | None = None) -> list[Transition]:
        rows = self.ledger.experiments() if rows is None else rows
        return view.transitions(rows, self.config.reward.failure_penalty)

    def state(self, in_flight: Iterable[dict[str, Any]] = ()) -> SearchState:
        """The proposer's view; edits already running on this incumbent are masked (`in_flight` proposals)."""
        assert self.space is not None
        inc = self.incumbent()
        source = self.history.source_at(inc.sha)
        mask = view.mask_without_running(self.space, source, inc.source_hash, in_flight)
        return view.search_state(self.ledger.experiments(), self.ledger.meta(), incumbent_source=source,
                                 base_source=self.base_source, space=self.space, mask=mask, oracle=self.config.oracle,
                                 failure_penalty=self.config.reward.failure_penalty, elapsed_s=self.elapsed_s())

    def progress(self) -> CampaignProgress:
        rows = self.ledger.experiments()
        return view.progress(rows, self.ledger.meta(), failure_penalty=self.config.reward.failure_penalty,
                             elapsed_s=self.elapsed_s(), proposer=self.proposer, audit=self.audit_summary(rows))

    @property
    def audits(self) -> bool:
        """Only a learning agent is audited (random search audited against itself would be waste)."""
        return self.audit_fraction > 0 and (isinstance(self.proposer, Learner) or getattr(self.proposer, "learns", False))

    def audit_summary(self, rows: list[ExperimentRow] | None = None) -> AuditSummary | None:
        """The agent's improvement rate against the interleaved random proposals', on this campaign."""
        if not self.audits:
            return None
        rows = self.ledger.experiments() if rows is None else rows
        return audit(rows, float(self.ledger.meta().get("keep_margin", 0.0)))
