"""`results.tsv` in the reference format, so tools written for the original autoresearch read our campaigns.

Columns: commit, val_bpb, memory_gb, status, description. Failures keep their row with val_bpb
0.000000, as the reference does for crashes; their peak memory is kept (it explains an OOM).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger.store import ExperimentRow, Ledger

HEADER = ("commit", "val_bpb", "memory_gb", "status", "description")


def reference_status(row: ExperimentRow) -> str:
    """Our Status in the reference vocabulary (keep / discard / crash...); failures keep their own name."""
    if row.status is Status.KEPT:
        return "keep"
    if row.status is Status.DISCARDED:
        return "discard"
    if row.status is Status.OK:
        return "baseline" if row.role == "baseline" else "ok"
    return row.status.value.lower()


def format_row(row: ExperimentRow) -> str:
    """One tab-separated line (no newline); free text is flattened so a description never breaks the table."""
    description = " ".join(row.description.replace("\t", " ").splitlines()).strip()
    val_bpb = row.val_bpb if row.val_bpb is not None and row.status.scored else 0.0
    return "\t".join((row.commit_sha[:7], f"{val_bpb:.6f}", f"{row.memory_gb:.1f}", reference_status(row), description))


def write_results_tsv(ledger: Ledger, path: Path) -> None:
    """Write every experiment in its final status, oldest first, atomically (a reader never sees half a file).

    A scored candidate waiting for its keep/discard decision is left out until it is decided, so a row
    appears once with the status it keeps (never `ok`, then rewritten as `keep`).
    """
    path = Path(path)
    lines = ["\t".join(HEADER)]
    lines += [format_row(row) for row in ledger.experiments() if row.status is not Status.RUNNING and row.decided]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
