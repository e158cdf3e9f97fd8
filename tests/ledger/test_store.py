"""Guarantees of the SQLite ledger: durable, resumable, honest about corruption and user mistakes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import ExperimentRecord, Status, Timings
from autoresearch_rl.ledger import Ledger
from autoresearch_rl.ledger.store import LEDGER_NAME, SCHEMA_VERSION

SRC = Path(__file__).resolve().parents[2] / "src"


def scored(val_bpb: float, status: Status = Status.OK, **kw: object) -> ExperimentRecord:
    return ExperimentRecord(status=status, val_bpb=val_bpb, **kw)  # type: ignore[arg-type]


def start(ledger: Ledger, role: str = "candidate", **kw: object) -> int:
    return ledger.start_experiment(role=role, source_hash="h" * 64, description="edit", **kw)  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path):
    with Ledger.open(tmp_path / "run") as led:
        yield led


def test_finished_experiment_round_trips_all_fields(ledger: Ledger) -> None:
    parent = start(ledger, role="baseline")
    exp = ledger.start_experiment(
        role="candidate", source_hash="abc", description="MATRIX_LR 0.04 -> 0.05", diff="--- a\n+++ b\n",
        parent_id=parent, seed=7, commit_sha="", log_path="/tmp/a.log", workspace="/tmp/ws",
    )
    ledger.set_commit(exp, "deadbeef" * 5)
    record = ExperimentRecord(
        status=Status.OK, val_bpb=1.2345, seed=7, timings=Timings(1.0, 2.0, 3.0, 4.0, 10.0), peak_memory_mb=2048.0,
        summary={"steps": 12, "train_loss": 3.5}, eval_details={"tokens": 4096, "causal": True}, log_tail="step 12\n",
        error="", log_path="", workspace="",
    )
    ledger.finish_experiment(exp, record, status=Status.KEPT)
    row = ledger.get(exp)
    assert (row.role, row.source_hash, row.description, row.diff) == ("candidate", "abc", "MATRIX_LR 0.04 -> 0.05", "--- a\n+++ b\n")
    assert (row.parent_id, row.seed, row.commit_sha) == (parent, 7, "deadbeef" * 5)
    assert row.status is Status.KEPT and row.val_bpb == 1.2345
    assert row.timings == Timings(1.0, 2.0, 3.0, 4.0, 10.0)
    assert row.peak_memory_mb == 2048.0 and row.memory_gb == 2.0
    assert row.summary == {"steps": 12, "train_loss": 3.5} and row.eval_details == {"tokens": 4096, "causal": True}
    assert row.log_tail == "step 12\n" and row.error == ""
    assert (row.log_path, row.workspace) == ("/tmp/a.log", "/tmp/ws")  # empty record paths keep the started ones
    assert row.finished_at is not None and row.finished_at >= row.created_at
    assert row.to_record().timings == record.timings


def test_start_inserts_running_row(ledger: Ledger) -> None:
    exp = start(ledger)
    assert ledger.get(exp).status is Status.RUNNING
    assert [r.id for r in ledger.running()] == [exp]
    assert ledger.get(exp).finished_at is None


def test_unknown_experiment_raises_key_error(ledger: Ledger) -> None:
    with pytest.raises(KeyError):
        ledger.get(99)
    with pytest.raises(KeyError):
        ledger.finish_experiment(99, scored(1.0))


def test_best_ignores_failed_runs(ledger: Ledger) -> None:
    good = start(ledger)
    ledger.finish_experiment(good, scored(1.5), status=Status.DISCARDED)
    bad = start(ledger)
    ledger.finish_experiment(bad, ExperimentRecord(status=Status.NONCAUSAL, val_bpb=0.1))  # suspiciously good, refused
    crashed = start(ledger)
    ledger.finish_experiment(crashed, ExperimentRecord(status=Status.CRASHED, error="boom"))
    start(ledger)  # still running
    best = ledger.best()
    assert best is not None and best.id == good


def test_best_is_none_without_scored_runs(ledger: Ledger) -> None:
    ledger.finish_experiment(start(ledger), ExperimentRecord(status=Status.TIMED_OUT))
    assert ledger.best() is None and ledger.baseline() is None


def test_baseline_is_first_scored_baseline(ledger: Ledger) -> None:
    ledger.finish_experiment(start(ledger, role="baseline"), ExperimentRecord(status=Status.CRASHED))
    first = start(ledger, role="baseline")
    ledger.finish_experiment(first, scored(1.4))
    ledger.finish_experiment(start(ledger, role="baseline"), scored(1.3))
    ledger.finish_experiment(start(ledger), scored(1.0), status=Status.KEPT)
    baseline = ledger.baseline()
    assert baseline is not None and baseline.id == first


def test_counts_by_status(ledger: Ledger) -> None:
    for status in (Status.KEPT, Status.DISCARDED, Status.DISCARDED, Status.NAN):
        ledger.finish_experiment(start(ledger), ExperimentRecord(status=status))
    start(ledger)
    assert ledger.counts_by_status() == {"KEPT": 1, "DISCARDED": 2, "NAN": 1, "RUNNING": 1}


def test_mark_interrupted_turns_running_rows_into_interrupted(ledger: Ledger) -> None:
    done = start(ledger)
    ledger.finish_experiment(done, scored(1.0))
    a, b = start(ledger), start(ledger)
    assert ledger.mark_interrupted("controller died") == 2
    for exp in (a, b):
        row = ledger.get(exp)
        assert row.status is Status.INTERRUPTED and row.error == "controller died" and row.finished_at is not None
    assert ledger.get(done).status is Status.OK
    assert ledger.running() == [] and ledger.mark_interrupted("again") == 0


def test_meta_round_trips_json_values(ledger: Ledger) -> None:
    ledger.set_meta(preset="cpu-tiny", seeds=[1, 2], env_hash="e" * 64)
    ledger.set_meta(preset="gpu-5min")
    meta = ledger.meta()
    assert meta["preset"] == "gpu-5min" and meta["seeds"] == [1, 2] and meta["env_hash"] == "e" * 64
    assert "created_at" in meta


def test_reopen_after_close_keeps_everything(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with Ledger.open(run) as led:
        led.set_meta(preset="cpu-tiny")
        exp = start(led)
        led.finish_experiment(exp, scored(1.1, summary={"x": 1}), status=Status.KEPT)
        before = led.experiments()
    with Ledger.open(run, create=False) as led:
        assert led.experiments() == before
        assert led.meta()["preset"] == "cpu-tiny"
        assert start(led) == exp + 1


def test_ids_are_never_reused_after_delete(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as led:
        first = start(led)
    conn = sqlite3.connect(tmp_path / LEDGER_NAME)
    with conn:
        conn.execute("DELETE FROM experiments")
    conn.close()
    with Ledger.open(tmp_path) as led:
        assert start(led) == first + 1  # AUTOINCREMENT: refs/experiments/<id> in git never collide


def test_wal_mode_enabled(ledger: Ledger) -> None:
    conn = sqlite3.connect(ledger.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()


def test_corrupt_file_raises_user_error(tmp_path: Path) -> None:
    (tmp_path / LEDGER_NAME).write_bytes(b"this is not sqlite at all " * 100)
    with pytest.raises(UserError, match=r"corrupt.*file is not a database.*new --run-dir"):
        Ledger.open(tmp_path)


def test_missing_campaign_raises_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no campaign at .*arl baseline --run-dir"):
        Ledger.open(tmp_path / "nowhere", create=False)
    assert not (tmp_path / "nowhere").exists()


def test_unwritable_run_dir_raises_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(UserError, match=str(blocker / "run")):
        Ledger.open(blocker / "run")


def test_newer_schema_raises_user_error(tmp_path: Path) -> None:
    Ledger.open(tmp_path).close()
    conn = sqlite3.connect(tmp_path / LEDGER_NAME)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(UserError, match="upgrade autoresearch-rl"):
        Ledger.open(tmp_path)


def test_backup_is_an_openable_snapshot(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with Ledger.open(run) as led:
        led.finish_experiment(start(led), scored(1.0))
        bak = led.backup()
    restored = tmp_path / "restored"
    restored.mkdir()
    os.replace(bak, restored / LEDGER_NAME)
    with Ledger.open(restored, create=False) as led:
        assert [r.val_bpb for r in led.experiments()] == [1.0]


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from autoresearch_rl.experiment import ExperimentRecord, Status
    from autoresearch_rl.ledger import Ledger

    led = Ledger.open(Path(sys.argv[1]))
    i = 0
    while True:
        exp = led.start_experiment(role="candidate", source_hash=str(i), description=f"edit {i}")
        led.finish_experiment(exp, ExperimentRecord(status=Status.DISCARDED, val_bpb=1.0 + i, log_tail="x" * 2000))
        print(exp, flush=True)
        i += 1
    """
)


def test_kill_during_write_loses_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env)
    committed: list[int] = []
    try:
        assert proc.stdout is not None
        while len(committed) < 30:
            line = proc.stdout.readline()
            assert line, "writer died before being killed"
            committed.append(int(line))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    with Ledger.open(tmp_path, create=False) as led:
        rows = {r.id: r for r in led.experiments()}
        for exp in committed:
            row = rows[exp]
            assert row.status is Status.DISCARDED and row.val_bpb == 1.0 + int(row.source_hash)
            assert row.log_tail == "x" * 2000
        assert all(r.status in (Status.DISCARDED, Status.RUNNING) for r in rows.values())
    conn = sqlite3.connect(tmp_path / LEDGER_NAME)
    try:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_a_decision_is_its_own_fact_and_the_run_status_is_never_overwritten(ledger: Ledger) -> None:
    exp = ledger.start_experiment(role="candidate", source_hash="h", description="wider")
    ledger.finish_experiment(exp, ExperimentRecord(status=Status.OK, val_bpb=0.9))
    assert ledger.get(exp).status is Status.OK and ledger.get(exp).reward is None and not ledger.get(exp).decided
    ledger.decide(exp, Status.KEPT, 1.5, incumbent={"exp_id": exp})
    row = ledger.get(exp)
    assert (row.status, row.run_status, row.reward, row.decided) == (Status.KEPT, Status.OK, 1.5, True)
    assert ledger.counts_by_status() == {"KEPT": 1} and ledger.experiments()[0].status is Status.KEPT
    with pytest.raises(RuntimeError, match="decided already"):
        ledger.decide(exp, Status.DISCARDED, -1.0)
    assert ledger.get(exp).status is Status.KEPT  # the refused second verdict changed nothing


def test_a_version_2_ledger_is_migrated_with_its_verdicts_as_decisions(tmp_path: Path) -> None:
    """Schema 2 wrote the verdict over the run's status; opening it moves verdicts into `decisions`."""
    conn = sqlite3.connect(tmp_path / LEDGER_NAME)
    conn.executescript("""
        CREATE TABLE campaign (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE experiments (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, finished_at REAL,
            parent_id INTEGER, role TEXT NOT NULL, source_hash TEXT NOT NULL, commit_sha TEXT NOT NULL DEFAULT '',
            description TEXT NOT NULL DEFAULT '', diff TEXT NOT NULL DEFAULT '', seed INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL, val_bpb REAL, startup_s REAL NOT NULL DEFAULT 0, training_s REAL NOT NULL DEFAULT 0,
            save_s REAL NOT NULL DEFAULT 0, eval_s REAL NOT NULL DEFAULT 0, total_s REAL NOT NULL DEFAULT 0,
            peak_memory_mb REAL, summary_json TEXT NOT NULL DEFAULT '{}', eval_json TEXT NOT NULL DEFAULT '{}',
            log_tail TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '', log_path TEXT NOT NULL DEFAULT '',
            workspace TEXT NOT NULL DEFAULT '', proposal_json TEXT NOT NULL DEFAULT '{}', reward REAL, retry_of INTEGER);
        INSERT INTO campaign VALUES ('created_at', '"2026-12-01T00:00:00+00:00"');
        INSERT INTO experiments(created_at, finished_at, role, source_hash, status, val_bpb, reward)
            VALUES (1, 2, 'calibration', 'a', 'OK', 1.0, NULL), (3, 4, 'candidate', 'b', 'KEPT', 0.9, 2.0),
                   (5, 6, 'candidate', 'c', 'DISCARDED', 1.1, -1.0), (7, 8, 'candidate', 'd', 'CRASHED', NULL, -3.0),
                   (9, 10, 'candidate', 'e', 'OK', 0.95, NULL);
        PRAGMA user_version=2;
    """)
    conn.close()
    with Ledger.open(tmp_path, create=False) as ledger:
        rows = ledger.experiments()
    assert [(r.status, r.run_status, r.reward) for r in rows] == [
        (Status.OK, Status.OK, None), (Status.KEPT, Status.OK, 2.0), (Status.DISCARDED, Status.OK, -1.0),
        (Status.CRASHED, Status.CRASHED, -3.0), (Status.OK, Status.OK, None)]
    assert [r.decided for r in rows] == [True, True, True, True, False]
    conn = sqlite3.connect(tmp_path / LEDGER_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT status FROM experiments ORDER BY id").fetchall() == [("OK",), ("OK",), ("OK",),
                                                                                    ("CRASHED",), ("OK",)]
    conn.close()
