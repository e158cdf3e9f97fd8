"""The verdict on a finished candidate, as a pure function of the ledger: keep, discard, or wait for evidence.

Waiting happens for two reasons: a small win owes a confirmation run (another seed) before it is
believed, and a run whose throughput says the machine changed owes a paired re-run of the
incumbent (selfeval/drift.py). The loop turns a wait into a queued job and a verdict into a ledger
write; this module only reads.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from autoresearch_rl.decision import Verdict, judge, reward
from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger import ExperimentRow
from autoresearch_rl.loop_config import Incumbent, LoopConfig
from autoresearch_rl.selfeval.drift import drift_account, incumbent_value, paired_remeasure_owed


@dataclass(frozen=True)
class CandidateVerdict:
    """`status` set: decided (record it). Else `wait` says what is owed first ("" : nothing to do now)."""

    status: Status | None = None
    reward: float | None = None
    score: float | None = None  # the mean of its runs (None for a failure)
    wait: str = ""  # "confirm" | "remeasure" | "" (decided already, or its extra run is in flight)
    throughput_change: float = 0.0  # for "remeasure": how far its speed moved from the machine's

    @property
    def kept(self) -> bool:
        return self.status is Status.KEPT


def judge_candidate(row: ExperimentRow, rows: Sequence[ExperimentRow], inc: Incumbent, sigma: float,
                    config: LoopConfig) -> CandidateVerdict:
    """Keep (beats the current incumbent's mean by the margin), discard, or what it waits for."""
    if row.reward is not None or row.status in (Status.RUNNING, Status.INTERRUPTED, Status.KEPT, Status.DISCARDED):
        return CandidateVerdict()  # decided already, or nothing to decide
    parent_val = float(row.proposal.get("incumbent_val_bpb", inc.val_bpb))
    status, score = row.status, None
    if not (row.status.failed or row.val_bpb is None):
        confirmations = [r for r in rows if r.role == "confirmation" and r.parent_id == row.id]
        runs = [row.val_bpb] + [r.val_bpb for r in confirmations if r.status.scored and r.val_bpb is not None]
        account = drift_account(rows, config.drift) if config.drift is not None else None
        verdict = judge(incumbent_value(rows, inc.source_hash, account, inc.val_bpb), runs, sigma, config.keep)
        if verdict is not Verdict.DISCARD and account is not None:
            change = paired_remeasure_owed(row, rows, inc.source_hash, account)
            if change is not None:  # it may win only because the machine changed: the incumbent runs again first
                running = any(r.role == "remeasure" and r.parent_id == row.id and r.status is Status.RUNNING
                              for r in rows)
                return CandidateVerdict(wait="" if running else "remeasure", throughput_change=change)
        if verdict is Verdict.CONFIRM:
            if any(r.status is Status.RUNNING for r in confirmations):
                return CandidateVerdict()
            if not any(r.status.scored or r.status.failed for r in confirmations):
                return CandidateVerdict(wait="confirm")  # a small win: run it again with another seed first
            verdict = Verdict.DISCARD  # its confirmation did not even run: it does not reproduce
        score = statistics.fmean(runs)
        status = Status.KEPT if verdict is Verdict.KEEP else Status.DISCARDED
    r = reward(parent_val, score, sigma, config.reward)
    predicted = row.summary.get("predicted_val_bpb") if row.status is Status.ABORTED else None
    if isinstance(predicted, (int, float)) and math.isfinite(predicted):
        r = reward(parent_val, float(predicted), sigma, config.reward)  # aborted: learn from its predicted score
    return CandidateVerdict(status=status, reward=r, score=score)
