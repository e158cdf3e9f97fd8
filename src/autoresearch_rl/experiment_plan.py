"""What each kind of experiment runs: its train.py, training seed, description and parent.

The loop decides *when* to start a calibration run, a candidate, the re-run of an interrupted one, a
confirmation or a re-measurement of the incumbent; this module says *what* that experiment is, as a
`Start` (the arguments of `Campaign.start`), from what the ledger records (it only reads it). Seeds
derive from (campaign seed, role, index), so the re-run of an interrupted experiment gets the seed it
had: a resumed campaign is the one that never stopped.

Roles in the ledger: `calibration` (the unmodified base train.py with distinct seeds: the noise
sigma and the starting incumbent), `candidate` (one iteration: one proposal), `confirmation` (a
re-run of a candidate's train.py with another seed, when its apparent win was small), `remeasure`
(a re-run of the incumbent: paired with a candidate whose throughput says the machine changed, or
periodic; see selfeval/drift.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from autoresearch_rl.campaign_view import calibration_runs, incumbent_of, next_calibration_index
from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger import CandidateHistory, Ledger
from autoresearch_rl.loop_config import LoopConfig, derive_seed
from autoresearch_rl.materialise import Materialiser
from autoresearch_rl.selfeval.accounting import abort_spec_for

MAX_CALIBRATION_ATTEMPTS_FACTOR = 2  # calibration gives up after 2x the requested runs fail


@dataclass(frozen=True)
class Start:
    """An experiment about to start: the arguments of `Campaign.start`."""

    role: str
    source: str
    description: str
    seed: int
    parent_id: int | None = None
    proposal: dict[str, Any] | None = None
    retry_of: int | None = None
    validate: bool = False  # the one-step smoke check before the budget is spent
    rejected: str = ""  # not run, and why (a masked edit, code that already ran)
    diff: str = ""
    abort: Any = None  # the AbortSpec the worker judges the run's loss curve by

    def kwargs(self) -> dict[str, Any]:
        # shallow on purpose: asdict() would turn the AbortSpec into a dict
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("role", "source", "description")}


class ExperimentPlanner:
    def __init__(self, config: LoopConfig, ledger: Ledger, history: CandidateHistory, materialiser: Materialiser,
                 budget_s: float) -> None:
        self.config = config
        self.ledger = ledger
        self.history = history
        self.materialiser = materialiser
        self.base_source = materialiser.base_source
        self.budget_s = budget_s

    def seed(self, role: str, index: int) -> int:
        """Training seed from (campaign seed, role, index)."""
        if role == "calibration":
            return self.config.seed * 1000 + index  # readable: campaign seed 0 calibrates with seeds 0, 1, 2
        return derive_seed(self.config.seed, role, index)

    def calibration(self, attempts: int) -> Start | None:
        """Another run of the base train.py while fewer than `calibration_seeds` are scored or running (None:
        enough); a base train.py that keeps failing is a one-line error once the runs in flight are done."""
        wanted = self.config.noise.calibration_seeds
        rows = self.ledger.experiments()
        runs = [r for r in rows if r.role == "calibration"]
        scored, _ = calibration_runs(rows, wanted)  # a run on a disturbed machine is replaced by another
        running = [r for r in runs if r.status is Status.RUNNING]
        failed = [r for r in runs if r.status.failed]
        if len(scored) + len(running) >= wanted:
            return None
        if len(failed) >= wanted * MAX_CALIBRATION_ATTEMPTS_FACTOR or attempts > 4 * wanted:
            if running:
                return None  # let the runs in flight finish; the last one to fail raises
            last = failed[-1] if failed else runs[-1]
            raise UserError(f"the base train.py does not run ({last.status.value}: {last.error or 'see ' + last.log_path}); "
                            "fix it, check it with `arl baseline`, then resume")
        index = next_calibration_index(runs, lambda i: self.seed("calibration", i))
        return Start("calibration", self.base_source, f"calibration {len(scored) + len(running) + 1}/{wanted}: "
                     "base train.py", seed=self.seed("calibration", index))

    def candidate(self, parent_source: str, parent_id: int | None, payload: dict[str, Any],
                  retry_of: int | None = None) -> Start:
        """A proposal (or the re-run of an interrupted one, `retry_of`) as the train.py that runs."""
        rows, meta = self.ledger.experiments(), self.ledger.meta()
        inc = incumbent_of(meta)
        c = self.materialiser.candidate(parent_source, payload, rows, retry=retry_of is not None)
        seed = self.seed("candidate", payload["iteration"])
        abort = abort_spec_for(self.config.abort, rows, inc.exp_id, inc.val_bpb, float(meta["keep_margin"]),
                               self.budget_s, seed)
        return Start("candidate", c.source, c.description, seed=seed, parent_id=parent_id, proposal=payload,
                     retry_of=retry_of, validate=self.config.smoke_check, rejected=c.rejected, diff=c.diff,
                     abort=abort)

    def retry(self, interrupted_id: int) -> Start:
        """The same proposal against the same parent, with the same seed: the run that was interrupted."""
        row = self.ledger.get(interrupted_id)
        parent = self.ledger.get(row.parent_id) if row.parent_id is not None else None
        parent_source = self.history.source_at(parent.commit_sha) if parent and parent.commit_sha else self.base_source
        return self.candidate(parent_source, row.parent_id, row.proposal, retry_of=row.id)

    def confirmation(self, exp_id: int) -> Start | None:
        """Another run of a candidate's train.py with another seed (None: it was decided meanwhile)."""
        row = self.ledger.get(exp_id)
        if row.decided:
            return None
        return Start("confirmation", self.history.source_at(row.commit_sha),
                     f"confirmation of experiment {row.id}: {row.description}", parent_id=row.id,
                     seed=self.seed("confirmation", row.proposal.get("iteration", row.id)))

    def remeasure(self, parent_id: int, why: str) -> Start:
        """Another run of the incumbent: paired with a candidate whose throughput moved, or periodic."""
        inc = incumbent_of(self.ledger.meta())
        index = sum(r.role == "remeasure" and r.status is not Status.INTERRUPTED for r in self.ledger.experiments())
        return Start("remeasure", self.history.source_at(inc.sha), f"re-measurement of the incumbent ({why})",
                     parent_id=parent_id, seed=self.seed("remeasure", index), proposal={"periodic": why == "periodic"})
