"""The campaign ledger: one SQLite file per run directory holding every experiment ever started.

The ledger is what makes a campaign resumable. Each state change (start, commit, finish,
interrupt, metadata) is one `BEGIN IMMEDIATE ... COMMIT` transaction in WAL mode with
`synchronous=FULL`, so a controller killed at any moment leaves either the old or the new state,
never half of one. Writes are rare (a few per experiment, minutes apart), so durability costs
nothing measurable.

A run's outcome (OK, CRASHED, ...) and the loop's verdict on it (KEPT, DISCARDED, with the reward
the agent learned from) are two facts, in two tables: `finish_experiment` writes the outcome once,
`decide` appends the decision; no status is overwritten. A row read back carries the verdict as its
`status` once decided (what every reader wants) and the outcome as `run_status`.

    with Ledger.open(run_dir) as ledger:
        exp_id = ledger.start_experiment(role="candidate", source_hash=h, description="MATRIX_LR 0.04 -> 0.05")
        ledger.finish_experiment(exp_id, record)
        ledger.decide(exp_id, Status.DISCARDED, reward=-0.3)
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import ExperimentRecord, Status
from autoresearch_rl.ledger.row import ExperimentRow, decode_row
from autoresearch_rl.ledger.schema import SCHEMA_VERSION, SELECT, bring_up_to_date

__all__ = ["BACKUP_NAME", "LEDGER_NAME", "SCHEMA_VERSION", "ExperimentRow", "Ledger"]

log = logging.getLogger(__name__)

LEDGER_NAME = "ledger.sqlite"
BACKUP_NAME = "ledger.sqlite.bak"
BUSY_TIMEOUT_S = 30.0  # `arl status` may read while `arl run` writes; wait rather than fail

_SCORED = tuple(s.value for s in Status if s.scored)
_DECISION_STATUSES = (Status.KEPT, Status.DISCARDED)


def _json(value: dict[str, Any]) -> str:
    # default=str: a summary value the runner could not type (a path, a numpy scalar) is kept as text, not lost
    return json.dumps(value, sort_keys=True, default=str)


class Ledger:
    """Every experiment of one campaign, in `<run_dir>/ledger.sqlite`. Thread-safe; one writer process at a time."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = threading.RLock()  # parallel experiments finish on different threads of one controller
        # decoded rows by id, with the columns that change when a row does: the loop reads the whole ledger
        # every iteration, and decoding hundreds of JSON proposals each time would grow quadratically
        self._rows: dict[int, tuple[tuple[Any, ...], ExperimentRow]] = {}

    # ---- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open(cls, run_dir: Path, *, create: bool = True) -> Ledger:
        """Open the campaign in `run_dir`, creating the directory and ledger when `create` is true."""
        run_dir = Path(run_dir)
        path = run_dir / LEDGER_NAME
        if not create and not path.is_file():
            raise UserError(f"no campaign at {run_dir}; run `arl baseline --run-dir {run_dir}` first")
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create run directory {run_dir} ({exc.strerror}); choose a writable --run-dir") from exc
        if not os.access(run_dir, os.W_OK):
            raise UserError(f"run directory {run_dir} is not writable; fix its permissions or choose another --run-dir")
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise UserError(f"cannot open ledger {path} ({exc}); check the permissions of {run_dir}") from exc
        try:
            cls._prepare(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn)

    @staticmethod
    def _prepare(conn: sqlite3.Connection, path: Path) -> None:
        conn.row_factory = sqlite3.Row
        fix = f"move it aside and restore {path.with_name(BACKUP_NAME)} if present, or start a new --run-dir"
        try:
            problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as exc:
            raise UserError(f"ledger {path} is corrupt ({exc}); {fix}") from exc
        if problems != ["ok"]:
            raise UserError(f"ledger {path} is corrupt ({problems[0]}); {fix}")
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = bring_up_to_date(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            raise UserError(f"cannot write ledger {path} ({exc}); check the permissions of {path.parent}") from exc
        if version > SCHEMA_VERSION:
            raise UserError(
                f"ledger {path} has schema version {version}, newer than this autoresearch-rl understands "
                f"({SCHEMA_VERSION}); upgrade autoresearch-rl or use a new --run-dir"
            )

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close; idempotent."""
        with self._lock:
            if self._conn is None:
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError:
                pass  # another process is reading; the WAL is merged later, nothing is lost
            self._conn.close()
            self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; IMMEDIATE so a concurrent writer waits at BEGIN instead of failing mid-way."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def backup(self) -> Path:
        """Copy a consistent snapshot to `ledger.sqlite.bak` (atomically), the restore point named in corruption errors."""
        target = self.path.with_name(BACKUP_NAME)
        tmp = target.with_name(f".{BACKUP_NAME}.{os.getpid()}.tmp")
        with self._lock:
            dest = sqlite3.connect(tmp)
            try:
                self._conn.backup(dest)
            finally:
                dest.close()
        os.replace(tmp, target)
        return target

    # ---- campaign metadata -------------------------------------------------------------------

    def set_meta(self, **items: Any) -> None:
        """Record campaign facts (preset, env_hash, seeds, versions, hostname); values must be JSON-serialisable."""
        rows = [(key, json.dumps(value, sort_keys=True)) for key, value in items.items()]
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO campaign(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", rows
            )

    def meta(self) -> dict[str, Any]:
        """All campaign metadata, decoded."""
        with self._lock:
            return {r["key"]: json.loads(r["value"]) for r in self._conn.execute("SELECT key, value FROM campaign ORDER BY key")}

    # ---- experiments ---------------------------------------------------------------------------

    def start_experiment(
        self,
        *,
        role: str,
        source_hash: str,
        description: str,
        diff: str = "",
        parent_id: int | None = None,
        seed: int = 0,
        commit_sha: str = "",
        log_path: str = "",
        workspace: str = "",
        proposal: dict[str, Any] | None = None,
        retry_of: int | None = None,
    ) -> int:
        """Insert a RUNNING row before the run starts, so a kill during the run is visible on resume."""
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO experiments(created_at, parent_id, role, source_hash, commit_sha, description, diff, seed,"
                " status, log_path, workspace, proposal_json, retry_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), parent_id, role, source_hash, commit_sha, description, diff, seed, Status.RUNNING.value,
                 log_path, workspace, _json(proposal or {}), retry_of),
            )
            return int(cur.lastrowid)  # type: ignore[arg-type]

    def set_commit(self, exp_id: int, sha: str) -> None:
        """Attach the history commit of this experiment's train.py."""
        with self._write() as conn:
            self._require(conn.execute("UPDATE experiments SET commit_sha=? WHERE id=?", (sha, exp_id)), exp_id)

    def set_workspace(self, exp_id: int, workspace: str) -> None:
        """Record where this experiment runs (known once its row, and with it its id, exists)."""
        with self._write() as conn:
            self._require(conn.execute("UPDATE experiments SET workspace=? WHERE id=?", (workspace, exp_id)), exp_id)

    def finish_experiment(self, exp_id: int, record: ExperimentRecord, status: Status | None = None) -> None:
        """Store how the run ended. `status` KEPT/DISCARDED also records that verdict (no reward), in the same
        transaction, for callers that decide as they finish (`arl baseline`, tests); any other `status`
        overrides `record.status` as the outcome."""
        verdict = status if status in _DECISION_STATUSES else None
        final = record.status if verdict is not None or status is None else status
        t = record.timings
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE experiments SET finished_at=?, status=?, val_bpb=?, startup_s=?, training_s=?, save_s=?, eval_s=?,"
                " total_s=?, peak_memory_mb=?, summary_json=?, eval_json=?, log_tail=?, error=?,"
                " log_path=COALESCE(NULLIF(?, ''), log_path), workspace=COALESCE(NULLIF(?, ''), workspace) WHERE id=?",
                (time.time(), final.value, record.val_bpb, t.startup, t.training, t.save, t.evaluation, t.total,
                 record.peak_memory_mb, _json(record.summary), _json(record.eval_details), record.log_tail, record.error,
                 record.log_path, record.workspace, exp_id),
            )
            self._require(cur, exp_id)
            if verdict is not None:
                self._insert_decision(conn, exp_id, verdict, None)

    def decide(self, exp_id: int, status: Status, reward: float | None, **meta: Any) -> None:
        """The loop's verdict on a finished candidate, and campaign facts that change with it, in one transaction.

        One transaction means a kill leaves either the undecided row (the loop decides it again on resume,
        deterministically) or the verdict together with its consequences (e.g. the new incumbent). The
        verdict is appended; deciding an experiment twice is refused (a bug, not a user error).
        """
        rows = [(key, json.dumps(value, sort_keys=True)) for key, value in meta.items()]
        with self._write() as conn:
            self._require(conn.execute("SELECT id FROM experiments WHERE id=?", (exp_id,)).fetchall(), exp_id)
            self._insert_decision(conn, exp_id, status, reward)
            conn.executemany(
                "INSERT INTO campaign(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", rows
            )

    @staticmethod
    def _insert_decision(conn: sqlite3.Connection, exp_id: int, verdict: Status, reward: float | None) -> None:
        try:
            conn.execute("INSERT INTO decisions(exp_id, verdict, reward, decided_at) VALUES (?, ?, ?, ?)",
                         (exp_id, verdict.value, reward, time.time()))
        except sqlite3.IntegrityError:
            raise RuntimeError(f"experiment {exp_id} was decided already") from None

    def mark_interrupted(self, reason: str) -> int:
        """On resume: turn rows left RUNNING by a dead controller into INTERRUPTED; returns how many."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE experiments SET status=?, error=?, finished_at=? WHERE status=?",
                (Status.INTERRUPTED.value, reason, time.time(), Status.RUNNING.value),
            )
            return cur.rowcount

    @staticmethod
    def _require(cur: sqlite3.Cursor | list[Any], exp_id: int) -> None:
        if (len(cur) if isinstance(cur, list) else cur.rowcount) == 0:
            raise KeyError(f"no experiment {exp_id} in the ledger")

    # ---- queries ---------------------------------------------------------------------------------

    def _select(self, where: str = "", params: tuple[Any, ...] = (), tail: str = "ORDER BY id") -> list[ExperimentRow]:
        sql = f"{SELECT} {('WHERE ' + where) if where else ''} {tail}"
        with self._lock:
            return [decode_row(r) for r in self._conn.execute(sql, params)]

    def experiments(self) -> list[ExperimentRow]:
        """Every experiment, oldest first (rows unchanged since the last call are not decoded again)."""
        with self._lock:
            versions = [tuple(v) for v in self._conn.execute(
                "SELECT e.id, e.status, e.finished_at, d.verdict, e.commit_sha FROM experiments e"
                " LEFT JOIN decisions d ON d.exp_id = e.id ORDER BY e.id")]
            stale = [v[0] for v in versions if self._rows.get(v[0], ((),))[0] != v]
            for start in range(0, len(stale), 500):
                chunk = stale[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for r in self._conn.execute(f"{SELECT} WHERE e.id IN ({marks})", chunk):
                    row = decode_row(r)
                    self._rows[row.id] = ((row.id, r["status"], r["finished_at"], r["verdict"], r["commit_sha"]), row)
            return [self._rows[v[0]][1] for v in versions if v[0] in self._rows]

    def get(self, exp_id: int) -> ExperimentRow:
        rows = self._select("e.id=?", (exp_id,))
        if not rows:
            raise KeyError(f"no experiment {exp_id} in the ledger")
        return rows[0]

    def running(self) -> list[ExperimentRow]:
        return self._select("e.status=?", (Status.RUNNING.value,))

    def counts_by_status(self) -> dict[str, int]:
        """Status value -> number of experiments, for `arl status`."""
        with self._lock:
            rows = self._conn.execute("SELECT COALESCE(d.verdict, e.status) AS s, COUNT(*) FROM experiments e"
                                      " LEFT JOIN decisions d ON d.exp_id = e.id GROUP BY s ORDER BY s")
            return {status: n for status, n in rows}

    def best(self) -> ExperimentRow | None:
        """Lowest val_bpb among scored experiments (failures never count); earliest wins a tie."""
        marks = ",".join("?" * len(_SCORED))
        rows = self._select(f"e.status IN ({marks}) AND e.val_bpb IS NOT NULL", _SCORED, "ORDER BY e.val_bpb, e.id LIMIT 1")
        return rows[0] if rows else None

    def baseline(self) -> ExperimentRow | None:
        """The first scored baseline run, the reference every improvement is measured against."""
        marks = ",".join("?" * len(_SCORED))
        rows = self._select(f"e.role='baseline' AND e.status IN ({marks}) AND e.val_bpb IS NOT NULL", _SCORED,
                            "ORDER BY e.id LIMIT 1")
        return rows[0] if rows else None
