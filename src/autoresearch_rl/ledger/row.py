"""One experiment as read back from the ledger: its run, and the loop's verdict on it once decided."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from autoresearch_rl.experiment import ExperimentRecord, Status, Timings


@dataclass(frozen=True)
class ExperimentRow:
    """One row of the `experiments` table, decoded (status as Status, JSON columns as dicts)."""

    id: int
    created_at: float  # unix seconds
    finished_at: float | None  # None while RUNNING
    parent_id: int | None  # the incumbent experiment this candidate was derived from
    role: str  # 'baseline', 'candidate', 'calibration', ...
    source_hash: str  # sha256 of the train.py that ran
    commit_sha: str  # commit in the history repository ('' until recorded)
    description: str
    diff: str
    seed: int
    status: Status  # the verdict once decided (KEPT, DISCARDED, or the failure), else the run's outcome
    val_bpb: float | None
    timings: Timings = field(default_factory=Timings)
    peak_memory_mb: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    eval_details: dict[str, Any] = field(default_factory=dict)
    log_tail: str = ""
    error: str = ""
    log_path: str = ""
    workspace: str = ""
    proposal: dict[str, Any] = field(default_factory=dict)  # the proposer's choice and what it knew (replay on resume)
    reward: float | None = None  # what the agent learned from this experiment; None until decided
    retry_of: int | None = None  # the interrupted experiment this one re-runs
    run_status: Status | None = None  # how the run itself ended (OK for a kept one); None: same as status

    @property
    def memory_gb(self) -> float:
        """Peak memory in GB, the reference results.tsv column."""
        return round((self.peak_memory_mb or 0.0) / 1024.0, 3)

    @property
    def decided(self) -> bool:
        """Finished and no longer waiting for a keep/discard decision."""
        return self.status not in (Status.RUNNING, Status.OK) or self.role != "candidate"

    def to_record(self) -> ExperimentRecord:
        """The runner's view of this row, e.g. to feed a resumed agent its past outcomes."""
        return ExperimentRecord(
            status=self.status,
            val_bpb=self.val_bpb,
            seed=self.seed,
            timings=self.timings,
            peak_memory_mb=self.peak_memory_mb,
            summary=self.summary,
            eval_details=self.eval_details,
            log_tail=self.log_tail,
            error=self.error,
            log_path=self.log_path,
            workspace=self.workspace,
        )


def decode_row(r: sqlite3.Row) -> ExperimentRow:
    """A row of `schema.SELECT`: the verdict, when there is one, is the status; the outcome is `run_status`."""
    return ExperimentRow(
        id=r["id"],
        created_at=r["created_at"],
        finished_at=r["finished_at"],
        parent_id=r["parent_id"],
        role=r["role"],
        source_hash=r["source_hash"],
        commit_sha=r["commit_sha"],
        description=r["description"],
        diff=r["diff"],
        seed=r["seed"],
        status=Status(r["verdict"] or r["status"]),
        val_bpb=r["val_bpb"],
        timings=Timings(
            startup=r["startup_s"], training=r["training_s"], save=r["save_s"], evaluation=r["eval_s"], total=r["total_s"]
        ),
        peak_memory_mb=r["peak_memory_mb"],
        summary=json.loads(r["summary_json"]),
        eval_details=json.loads(r["eval_json"]),
        log_tail=r["log_tail"],
        error=r["error"],
        log_path=r["log_path"],
        workspace=r["workspace"],
        proposal=json.loads(r["proposal_json"]),
        reward=r["reward"],
        retry_of=r["retry_of"],
        run_status=Status(r["status"]),
    )
