"""The ledger's tables, and how a ledger written by an earlier version becomes this version's.

The version is SQLite's `PRAGMA user_version`. Each migration is a list of statements run inside the
transaction that opens the ledger, so a kill mid-migration leaves the old version intact.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

SCHEMA_VERSION = 3  # bump with a migration in MIGRATIONS when tables or columns change

SCHEMA = """
CREATE TABLE campaign (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE experiments (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at     REAL NOT NULL,
    finished_at    REAL,
    parent_id      INTEGER REFERENCES experiments(id),
    role           TEXT NOT NULL,
    source_hash    TEXT NOT NULL,
    commit_sha     TEXT NOT NULL DEFAULT '',
    description    TEXT NOT NULL DEFAULT '',
    diff           TEXT NOT NULL DEFAULT '',
    seed           INTEGER NOT NULL DEFAULT 0,
    status         TEXT NOT NULL,
    val_bpb        REAL,
    startup_s      REAL NOT NULL DEFAULT 0,
    training_s     REAL NOT NULL DEFAULT 0,
    save_s         REAL NOT NULL DEFAULT 0,
    eval_s         REAL NOT NULL DEFAULT 0,
    total_s        REAL NOT NULL DEFAULT 0,
    peak_memory_mb REAL,
    summary_json   TEXT NOT NULL DEFAULT '{}',
    eval_json      TEXT NOT NULL DEFAULT '{}',
    log_tail       TEXT NOT NULL DEFAULT '',
    error          TEXT NOT NULL DEFAULT '',
    log_path       TEXT NOT NULL DEFAULT '',
    workspace      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX experiments_status ON experiments(status);
"""

# version reached -> statements that bring a ledger of the previous version to it
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        # what the proposer chose and knew when it chose (action, log-prob, value, features): replayed on resume
        "ALTER TABLE experiments ADD COLUMN proposal_json TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE experiments ADD COLUMN reward REAL",  # the reward the agent learned from (None until decided)
        "ALTER TABLE experiments ADD COLUMN retry_of INTEGER",  # an interrupted experiment this one re-runs
    ),
    3: (
        # a decision is its own fact: the run's status is never overwritten by the verdict
        "CREATE TABLE decisions (exp_id INTEGER PRIMARY KEY REFERENCES experiments(id), verdict TEXT NOT NULL,"
        " reward REAL, decided_at REAL NOT NULL)",
        "INSERT INTO decisions(exp_id, verdict, reward, decided_at) SELECT id, status, reward,"
        " COALESCE(finished_at, created_at) FROM experiments WHERE reward IS NOT NULL OR status IN ('KEPT', 'DISCARDED')",
        "UPDATE experiments SET status='OK' WHERE status IN ('KEPT', 'DISCARDED')",
        "ALTER TABLE experiments DROP COLUMN reward",
    ),
}
# every column of an experiment, with its decision (if any) beside it
SELECT = ("SELECT e.*, d.verdict AS verdict, d.reward AS reward, d.decided_at AS decided_at"
           " FROM experiments e LEFT JOIN decisions d ON d.exp_id = e.id")


def bring_up_to_date(conn: sqlite3.Connection) -> int:
    """Create the tables of a new ledger or migrate an old one, inside the caller's open transaction.

    Returns the version found (a newer one than this code knows is left untouched for the caller to refuse)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == 0:
        # statement by statement: executescript() would COMMIT the caller's transaction half-way
        for statement in filter(str.strip, SCHEMA.split(";")):
            conn.execute(statement)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        conn.execute("INSERT INTO campaign(key, value) VALUES ('created_at', ?)", (json.dumps(created),))
        version = 1
    if version < SCHEMA_VERSION:
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    return version
