"""The core loop's `Workers` over a real backend: a configuration of a train.py becomes a job that trains.

`core/loop.py` runs campaigns on configurations; in memory a landscape measures them. Here each
configuration is written as code (`render`: the base train.py with the configuration's constants
and structural variants, `target/params.apply_params`), sent as a `JobSpec` to a backend (inline,
local slots, Ray), and the worker's `ExperimentRecord` comes back as the core outcome: `Scored`
(val_bpb, wall seconds, tokens/s for the drift monitor, and the run's whole record as details: its
loss curve and abort checks for the pruner, logs and timings for the ledger), `Aborted` (stopped early on its loss curve, by the pruner's rule the job carries) or
`Crashed` (any failure, in one line). A configuration that cannot be written (`EditError`) is
sent as rejected: the worker records it without running. A lost worker (killed process, dead node)
is the machine's fault, not the candidate's: the job is sent again, up to `max_losses` times.

The training seed derives from the loop's measurement seed (campaign seed, configuration, earlier
runs of it), so the re-run of a configuration after a kill trains with the seed it had.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from autoresearch_rl.backends.base import Backend, JobResult, JobSpec
from autoresearch_rl.core.events import Aborted, Crashed, Scored
from autoresearch_rl.core.space import Config
from autoresearch_rl.core.workers import Outcome
from autoresearch_rl.experiment import ExperimentRecord, Status
from autoresearch_rl.loop_config import derive_seed
from autoresearch_rl.target.edits import EditError

WAIT_POLL_S = 1.0
MAX_WORKER_LOSSES = 3


def training_seed(seed: tuple[int, ...]) -> int:
    """A 31-bit training seed from the loop's measurement seed tuple."""
    return derive_seed(*seed)


def outcome_of(exp: int, record: ExperimentRecord) -> Outcome:
    cost = record.timings.total
    details = record.to_json()  # the run's whole record: the pruner reads its curve, the ledger projects it
    if record.status.scored and record.val_bpb is not None:
        speed = record.summary.get("tokens_per_second")
        return Scored(exp, float(record.val_bpb), cost_s=cost, throughput=float(speed) if speed else None,
                      details=details)
    if record.status is Status.ABORTED:
        predicted = record.summary.get("predicted_val_bpb")
        return Aborted(exp, record.error or "stopped early", predicted=float(predicted) if predicted else None,
                       cost_s=cost, details=details)
    return Crashed(exp, f"{record.status.value}: {record.error}" if record.error else record.status.value, cost_s=cost,
                   details=details)


class BackendWorkers:
    def __init__(self, backend: Backend, render: Callable[[Config], str], workspaces: Path, *,
                 validate: bool = True, max_losses: int = MAX_WORKER_LOSSES) -> None:
        self.backend = backend
        self.render = render
        self.workspaces = Path(workspaces)
        self.validate = validate  # the cheap smoke check before a budget is spent
        self.max_losses = max_losses
        self.losses: dict[int, int] = {}

    def free_slots(self) -> int:
        return self.backend.free_slots()

    def submit(self, exp: int, config: Config, seed: tuple[int, ...], prune: object | None = None) -> None:
        try:
            source, rejected = self.render(config), ""
        except EditError as exc:
            source, rejected = "", str(exc)
        self.backend.submit(JobSpec(exp_id=exp, source=source, workspace=str(self.workspaces / f"{exp:05d}"),
                                    seed=training_seed(seed), validate=self.validate, rejected=rejected,
                                    abort=prune if not rejected else None))

    def collect(self) -> list[Outcome]:
        while self.backend.in_flight():
            outcomes = [o for r in self.backend.wait(timeout=WAIT_POLL_S) if (o := self._outcome(r)) is not None]
            if outcomes:
                return outcomes
        return []

    def _outcome(self, result: JobResult) -> Outcome | None:
        exp = result.spec.exp_id
        if result.record is None:  # the worker was lost
            self.losses[exp] = self.losses.get(exp, 0) + 1
            if self.losses[exp] < self.max_losses:
                self.backend.submit(result.spec)
                return None
            return Crashed(exp, f"worker lost {self.losses[exp]} times ({result.lost})",
                           cost_s=result.finished_at - result.started_at)
        return outcome_of(exp, result.annotated_record())

    def in_flight(self) -> frozenset[int]:
        return frozenset(self.backend.in_flight())
