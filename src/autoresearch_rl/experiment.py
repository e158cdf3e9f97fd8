"""The outcome vocabulary shared by the runner, the ledger and (later) the loop.

Candidate failures are data: every experiment ends as an ExperimentRecord with a Status,
whatever happened to the candidate. Only harness failures raise.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any


class Status(str, enum.Enum):
    """How an experiment ended."""

    RUNNING = "RUNNING"  # recorded before the run starts; a resumed campaign finds these
    OK = "OK"  # trained and scored; no keep/discard decision (baseline, calibration)
    KEPT = "KEPT"  # scored and became the incumbent
    DISCARDED = "DISCARDED"  # scored, did not beat the incumbent
    INVALID = "INVALID"  # train.py does not compile
    INVALID_EDIT = "INVALID_EDIT"  # an edit failed its cheap pre-run validation
    CRASHED = "CRASHED"  # train.py exited non-zero
    TIMED_OUT = "TIMED_OUT"  # killed at the deadline (budget + start-up allowance)
    RESOURCE_LIMIT = "RESOURCE_LIMIT"  # killed for crossing a memory, process, disk, file-size or open-file limit
    OVER_BUDGET = "OVER_BUDGET"  # the frozen runtime's own report shows more training time than the budget
    NAN = "NAN"  # non-finite training loss or non-finite evaluation
    NO_CHECKPOINT = "NO_CHECKPOINT"  # exited cleanly without saving a model for the evaluator
    NONCAUSAL = "NONCAUSAL"  # evaluator: earlier logits depend on future tokens
    INTEGRITY_FAILED = "INTEGRITY_FAILED"  # evaluator: frozen files changed; refused to score
    EVAL_FAILED = "EVAL_FAILED"  # evaluator could not load or run the checkpoint
    INTERRUPTED = "INTERRUPTED"  # the controller stopped while it was running
    ABORTED = "ABORTED"  # stopped early: its loss curve predicted it would not beat the incumbent (selfeval/abort.py)

    @property
    def scored(self) -> bool:
        """True when the experiment has a val_bpb."""
        return self in (Status.OK, Status.KEPT, Status.DISCARDED)

    @property
    def failed(self) -> bool:
        """True for outcomes that the reward treats as a failure (penalised).

        ABORTED is not: the run was healthy and stopped on a prediction; its reward comes from that.
        """
        return self not in (Status.OK, Status.KEPT, Status.DISCARDED, Status.RUNNING, Status.INTERRUPTED,
                            Status.ABORTED)


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds of each phase of one experiment."""

    startup: float = 0.0  # process start to the first training step (imports, model build, compile)
    training: float = 0.0  # time counted against the budget, as reported by the frozen runtime
    save: float = 0.0  # checkpoint export
    evaluation: float = 0.0  # evaluator process, end to end
    total: float = 0.0  # runner's wall clock from launch to a scored record


@dataclass(frozen=True)
class ExperimentRecord:
    """Everything the runner learned about one run of one train.py."""

    status: Status
    val_bpb: float | None = None
    seed: int = 0
    timings: Timings = field(default_factory=Timings)
    peak_memory_mb: float | None = None  # max RSS of the training process (or CUDA peak when reported)
    summary: dict[str, Any] = field(default_factory=dict)  # parsed `key: value` lines after `---`
    eval_details: dict[str, Any] = field(default_factory=dict)  # evaluator's report (tokens, bytes, checks)
    log_tail: str = ""  # last lines of the candidate's output, for humans and for crash triage
    error: str = ""  # one line saying why it failed, when it did
    log_path: str = ""  # full log of the training process
    workspace: str = ""  # the directory the candidate ran in

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (a summary value the runner could not type is kept as text)."""
        data = asdict(self)
        data["status"] = self.status.value
        return json.loads(json.dumps(data, default=str))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExperimentRecord:
        fields_ = dict(data)
        return cls(**{**fields_, "status": Status(fields_["status"]), "timings": Timings(**fields_.get("timings", {}))})

    @property
    def memory_gb(self) -> float:
        """Peak memory in GB, the reference results.tsv column."""
        return round((self.peak_memory_mb or 0.0) / 1024.0, 3)
