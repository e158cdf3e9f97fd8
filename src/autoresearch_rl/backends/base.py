"""What crosses the line between the controller and wherever experiments run.

The controller (loop, agent, ledger, git) stays in one process. A backend only carries a `JobSpec`
(the train.py text, its workspace, seed and checks) to a worker and brings back a `JobResult`
(the runner's ExperimentRecord, or why the worker was lost). Both are plain picklable data, so the
same loop drives an in-process backend, a thread pool over local devices, or Ray tasks on a cluster.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Protocol

from autoresearch_rl.experiment import ExperimentRecord, Status, Timings
from autoresearch_rl.files import write_atomic

WORKER_FILE = "worker.json"  # written into the workspace when a worker starts a job: who runs it (pid, host)


@dataclass(frozen=True)
class JobSpec:
    """One experiment to run: everything a worker needs, nothing it must not see (no ledger, no agent)."""

    exp_id: int
    source: str  # the candidate train.py
    workspace: str  # directory the experiment runs in (on storage the worker can reach)
    seed: int
    validate: bool = False  # run the executor's cheap check first (an INVALID_EDIT costs seconds, not a budget)
    rejected: str = ""  # the edit could not be applied: record INVALID_EDIT without running anything
    abort: Any = None  # selfeval.abort.AbortSpec: stop a run early when its loss curve is doomed


@dataclass(frozen=True)
class JobResult:
    """A finished job. `record` is None when the worker was lost (killed process, dead node)."""

    spec: JobSpec
    record: ExperimentRecord | None
    worker: str  # "inline", "local:1", "ray:<node>:<pid>"
    device: str  # what it ran on, e.g. "cpu (shared by 2 slots)", "cuda:0"
    started_at: float
    finished_at: float
    lost: str = ""  # why the worker was lost, when it was

    def annotated_record(self) -> ExperimentRecord:
        """The worker's record, its summary noting where it ran and how its score may be read."""
        assert self.record is not None, "a lost worker left no record"
        extra: dict[str, Any] = {}
        if self.worker != "inline":
            extra.update(worker=self.worker, device=self.device)
        if getattr(self.spec.abort, "shadow", False):
            extra["abort_shadow"] = True  # never killed: what it really scored calibrates the abort rule
        if self.record.status is Status.ABORTED:
            extra["reward_from_prediction"] = True  # no val_bpb: the agent learns from the predicted one
        return replace(self.record, summary={**self.record.summary, **extra}) if extra else self.record


@dataclass(frozen=True)
class Slot:
    """Where a job runs on a machine: the environment that pins it to its device, and how to describe it."""

    name: str
    device: str
    env: Mapping[str, str] = field(default_factory=dict)
    shared: bool = False  # the device is shared with other slots: budgets are not comparable to an unshared run


class Executor(Protocol):
    """Runs one train.py. The default is the real runner; a fast in-test landscape can stand in for it."""

    def validate(self, source: str) -> str:
        """One line saying why `source` cannot be run (checked cheaply, before the budget is spent), or ''."""
        ...

    def execute(self, source: str, workspace: Path, seed: int, *, env: Mapping[str, str] | None = None,
                abort: Any = None) -> ExperimentRecord: ...


def execute_job(executor: Executor, spec: JobSpec, env: Mapping[str, str] | None = None) -> ExperimentRecord:
    """Worker side of one job: note who runs it, validate, then train and score."""
    workspace = Path(spec.workspace)
    workspace.mkdir(parents=True, exist_ok=True)
    worker = {"pid": os.getpid(), "host": platform.node(), "started": time.time()}
    write_atomic(workspace / WORKER_FILE, json.dumps(worker))  # whole or not at all: read while the job runs
    if spec.rejected:
        return ExperimentRecord(status=Status.INVALID_EDIT, seed=spec.seed, error=spec.rejected)
    if spec.validate:
        started = time.perf_counter()
        error = executor.validate(spec.source)
        if error:
            return ExperimentRecord(status=Status.INVALID_EDIT, seed=spec.seed, error=error,
                                    timings=Timings(total=time.perf_counter() - started))
    return executor.execute(spec.source, workspace, spec.seed, env=env, abort=spec.abort)


class Backend(Protocol):
    """Runs up to `slots` jobs at once. The controller submits, then waits for results as they arrive."""

    name: str
    slots: int

    def free_slots(self) -> int: ...

    def submit(self, spec: JobSpec) -> None: ...

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        """Block until at least one job finished (or `timeout` seconds passed); return what finished."""
        ...

    def in_flight(self) -> list[int]:
        """Experiment ids submitted and not yet returned by `wait`."""
        ...

    def shutdown(self, cancel: bool = False) -> None:
        """Release the workers; `cancel` kills running jobs (their experiments are then INTERRUPTED)."""
        ...
