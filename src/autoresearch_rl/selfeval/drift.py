"""Drift on real runs, read from the ledger: which candidates ran on a changed machine, and since when the
incumbent is compared only with runs under the current conditions.

What the report shows of `core/drift.py`'s monitor (same `DriftMonitor` settings), read back from the
ledger's rows: every run records its throughput (`tokens_per_second` in its summary); a candidate off
the machine's current speed (the median of the incumbent's runs under the current conditions) by more
than the tolerance was paired with a `remeasure` run of the incumbent, and when that re-run was off
too the machine changed: from then on only runs under the new conditions are compared
(`DriftAccount.since`). Everything is derived from the rows, so any reader gets the same account.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from autoresearch_rl.core.drift import DriftMonitor
from autoresearch_rl.ledger import ExperimentRow


def throughput(row: ExperimentRow) -> float | None:
    value = row.summary.get("tokens_per_second") if row.status.scored else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


@dataclass(frozen=True)
class DriftAccount:
    since: int = 0  # rows with id >= since are comparable with each other (0: the whole campaign)
    tolerance: float = 0.0
    events: tuple[dict[str, Any], ...] = field(default_factory=tuple)  # one per incumbent re-measurement

    def line(self) -> str:
        d = self.to_json()
        return (f"drift: {len(self.events)} re-measurement(s) of the incumbent ({d['flagged']} paired with a candidate "
                f"whose throughput moved > {self.tolerance:.0%}), {d['rebased']} machine change(s)")

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since, "tolerance": round(self.tolerance, 4),
                "flagged": sum(e["why"] == "flagged" for e in self.events),
                "rebased": sum(e["rebased"] for e in self.events), "events": list(self.events)}


def machine_speed(rows: list[ExperimentRow], source_hash: str, since: int, before: int) -> float | None:
    """Median throughput of the runs of one train.py (the incumbent's) in [since, before), else of all before."""
    same = [(r.id, throughput(r)) for r in rows if r.source_hash == source_hash and r.id < before]
    speeds = [tp for i, tp in same if tp is not None and i >= since] or [tp for _, tp in same if tp is not None]
    return statistics.median(speeds) if speeds else None


def drift_account(rows: list[ExperimentRow], monitor: DriftMonitor) -> DriftAccount:
    """Replay the incumbent re-measurements in order: which moved beyond the tolerance, and the regime now."""
    calibration = [tp for r in rows if r.role == "calibration" and (tp := throughput(r)) is not None]
    tolerance = monitor.tolerance_for(calibration)
    by_id = {r.id: r for r in rows}
    since, events = 0, []
    for r in rows:
        tp = throughput(r) if r.role == "remeasure" else None
        if tp is None:
            continue
        reference = machine_speed(rows, r.source_hash, since, r.id)
        if reference is None:
            continue
        change = tp / reference - 1.0
        parent = by_id.get(r.parent_id) if r.parent_id is not None else None
        flagged = parent is not None and parent.role == "candidate" and not r.proposal.get("periodic")
        rebased = abs(change) > tolerance
        if rebased:
            since = parent.id if flagged and parent is not None else r.id
        events.append({"remeasure": r.id, "candidate": parent.id if flagged and parent is not None else None,
                       "why": "flagged" if flagged else "periodic", "throughput_change": round(change, 4),
                       "rebased": rebased})
    return DriftAccount(since, tolerance, tuple(events))
