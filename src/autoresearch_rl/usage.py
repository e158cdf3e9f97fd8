"""How well a campaign used its workers: experiments per hour, and each worker's busy fraction.

Read from the ledger alone (each row's start and finish time, and the worker and device the
backend recorded in its summary), so `arl status` can show it while another process runs the
campaign, and a campaign resumed on another backend keeps one account.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger import ExperimentRow

SINGLE_WORKER = "local:0"  # the inline backend runs everything in the controller's own slot


@dataclass(frozen=True)
class WorkerUsage:
    worker: str
    devices: str  # the device(s) its experiments ran on
    experiments: int
    busy_hours: float
    utilisation: float  # busy time / campaign wall-clock time

    def to_json(self) -> dict[str, object]:
        return {"worker": self.worker, "devices": self.devices, "experiments": self.experiments,
                "busy_hours": round(self.busy_hours, 4), "utilisation": round(self.utilisation, 3)}


def _finished(rows: Iterable[ExperimentRow]) -> list[ExperimentRow]:
    return [r for r in rows if r.finished_at is not None and r.status is not Status.RUNNING]


def experiments_per_hour(rows: Iterable[ExperimentRow], elapsed_s: float) -> float | None:
    """Finished experiments (of any role and outcome, interrupted ones excluded) per wall-clock hour."""
    done = [r for r in _finished(rows) if r.status is not Status.INTERRUPTED]
    if elapsed_s <= 0 or not done:
        return None
    return len(done) / (elapsed_s / 3600.0)


def worker_usage(rows: Iterable[ExperimentRow], elapsed_s: float) -> list[WorkerUsage]:
    """Per worker: experiments finished, hours busy, and the busy fraction of the campaign's wall clock."""
    busy: dict[str, float] = {}
    count: dict[str, int] = {}
    devices: dict[str, set[str]] = {}
    for r in _finished(rows):
        worker = str(r.summary.get("worker") or SINGLE_WORKER)
        assert r.finished_at is not None
        busy[worker] = busy.get(worker, 0.0) + max(0.0, r.finished_at - r.created_at)
        count[worker] = count.get(worker, 0) + 1
        device = r.summary.get("device")
        if device:
            devices.setdefault(worker, set()).add(str(device))
    out = []
    for worker in sorted(busy):
        utilisation = busy[worker] / elapsed_s if elapsed_s > 0 else 0.0
        out.append(WorkerUsage(worker, ", ".join(sorted(devices.get(worker, ()))) or "-", count[worker],
                               busy[worker] / 3600.0, min(1.0, utilisation)))
    return out
