"""Files a killed controller can leave behind: each is repaired with a warning, or reported with its fix."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autoresearch_rl.campaign import Campaign
from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import ExperimentRecord, Status
from autoresearch_rl.ledger import Ledger

ARL = str(Path(sys.executable).with_name("arl"))


def _ledger_mid_run(run_dir: Path, rows: int) -> Path:
    """Copy of a ledger's files as a power cut would leave them: committed transactions still in the WAL."""
    ledger = Ledger.open(run_dir)
    for i in range(rows):
        exp_id = ledger.start_experiment(role="candidate", source_hash=f"h{i}", description=f"experiment {i}")
        ledger.finish_experiment(exp_id, ExperimentRecord(status=Status.DISCARDED, val_bpb=1.0 + i))
    snapshot = run_dir.parent / "snapshot"
    snapshot.mkdir()
    for name in ("ledger.sqlite", "ledger.sqlite-wal"):
        shutil.copy(run_dir / name, snapshot / name)  # while the connection is open: nothing checkpointed
    ledger.close()
    return snapshot


@pytest.mark.parametrize("cut", [1, 100, 4000])
def test_a_torn_wal_tail_opens_at_the_last_whole_transaction(tmp_path: Path, cut: int) -> None:
    snapshot = _ledger_mid_run(tmp_path / "run", rows=10)
    wal = snapshot / "ledger.sqlite-wal"
    assert wal.stat().st_size > cut
    os.truncate(wal, wal.stat().st_size - cut)  # the last frame(s) half on disk
    with Ledger.open(snapshot, create=False) as ledger:
        rows = ledger.experiments()
    assert 8 <= len(rows) <= 10  # at most the transactions of the torn frames are gone, never half of one
    for row in rows:
        assert row.status in (Status.RUNNING, Status.DISCARDED)
        assert (row.status is Status.DISCARDED) == (row.val_bpb is not None)  # a row is old or new, never mixed


def test_garbage_after_the_wal_is_ignored(tmp_path: Path) -> None:
    snapshot = _ledger_mid_run(tmp_path / "run", rows=5)
    with open(snapshot / "ledger.sqlite-wal", "ab") as f:
        f.write(os.urandom(5000))  # a write that never finished
    with Ledger.open(snapshot, create=False) as ledger:
        assert [r.status for r in ledger.experiments()] == [Status.DISCARDED] * 5


def test_a_truncated_ledger_is_one_line_with_the_fix(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with Ledger.open(run_dir) as ledger:
        for i in range(50):
            ledger.start_experiment(role="candidate", source_hash="h" * 64, description="x" * 500)
    path = run_dir / "ledger.sqlite"
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(UserError, match="ledger.sqlite.bak"):
        Ledger.open(run_dir, create=False)
    status = subprocess.run([ARL, "status", "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=120)
    assert status.returncode == 2
    assert status.stderr.count("\n") == 1 and "corrupt" in status.stderr and "ledger.sqlite.bak" in status.stderr


def test_stale_git_locks_of_a_killed_commit_are_removed_and_reported(tmp_path: Path, smoke_cache: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    with Campaign.open(tmp_path / "run", "cpu-smoke", smoke_cache) as campaign:
        git_dir = campaign.history.root / ".git"
    locks = [git_dir / "index.lock", git_dir / "refs" / "heads" / "research.lock"]
    for lock in locks:
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text("left by a controller killed mid-commit")
    with caplog.at_level(logging.WARNING), Campaign.open(tmp_path / "run", "cpu-smoke", smoke_cache) as campaign:
        sha = campaign.history.record("print('hi')\n", "after the kill", parent=None, exp_id=1)
        campaign.history.keep(sha)
        assert campaign.history.incumbent() == sha
    assert not [lock for lock in locks if lock.exists()]
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "index.lock" in warned and "research.lock" in warned and "stale git lock" in warned
