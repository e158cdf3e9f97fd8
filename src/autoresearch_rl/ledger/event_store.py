"""The durable `Store`: an append-only SQLite events table in a run directory, and git commits of kept versions.

`SQLiteEventStore` commits one transaction per event (WAL, synchronous=FULL), so a SIGKILL at any
instant leaves a prefix of the log: folding it is the resume. A database written by another
version (an older ledger with an experiments table and no events, or another events schema) is
refused with one line naming the version; it is never read as something it is not.

`GitKeeper` hangs git off the decision events: each kept configuration becomes a commit on the
`research` branch of `<run_dir>/history` (file `config.json`, or the train.py it writes), pinned as
`refs/experiments/<id>`.
It reconciles git with the log when a campaign is reopened (a kill between the event and the
commit loses nothing).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from autoresearch_rl import faults
from autoresearch_rl.core.events import EVENT_VERSION, CampaignStarted, Decided, Event, from_json, to_json
from autoresearch_rl.core.space import Config, DiscreteSpace
from autoresearch_rl.core.state import CampaignState
from autoresearch_rl.errors import UserError

EVENTS_NAME = "events.sqlite"
STORE_SCHEMA = f"events-v{EVENT_VERSION}"


class SQLiteEventStore:
    def __init__(self, run_dir: Path) -> None:
        run_dir = Path(run_dir)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create run directory {run_dir} ({exc.strerror}); choose another") from exc
        self.path = run_dir / EVENTS_NAME
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None)
            self._prepare()
            rows = self._conn.execute("SELECT body FROM events ORDER BY seq").fetchall()
        except sqlite3.DatabaseError as exc:
            raise UserError(f"event store {self.path} is corrupt ({exc}); move it aside or start a new run "
                            "directory") from exc
        try:
            self._events: list[Event] = [from_json(r[0]) for r in rows]
        except ValueError as exc:
            raise UserError(f"event store {self.path}: {exc}; use the version that wrote it or a new run directory") from exc

    def _prepare(self) -> None:
        c = self._conn
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=FULL")
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "experiments" in tables and "events" not in tables:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            raise UserError(f"{self.path} is an experiments ledger of schema version {version}, not an event log "
                            f"({STORE_SCHEMA}); open it with `arl` (the train.py loop) or start a new run directory")
        c.execute("BEGIN IMMEDIATE")
        c.execute("CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        c.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, body TEXT NOT NULL)")
        row = c.execute("SELECT value FROM store_meta WHERE key='schema'").fetchone()
        if row is None:
            c.execute("INSERT INTO store_meta VALUES ('schema', ?)", (STORE_SCHEMA,))
        c.execute("COMMIT")
        if row is not None and row[0] != STORE_SCHEMA:
            raise UserError(f"event store {self.path} has schema {row[0]}, this autoresearch-rl reads {STORE_SCHEMA}; "
                            "use the version that wrote it or a new run directory")

    def append(self, event: Event) -> None:
        faults.point("before_event")
        with self._conn:  # one transaction per event: a kill leaves a prefix of the log
            self._conn.execute("INSERT INTO events (type, body) VALUES (?, ?)", (type(event).__name__, to_json(event)))
        self._events.append(event)
        faults.point("event_recorded")

    def events(self) -> Sequence[Event]:
        return self._events

    def close(self) -> None:
        self._conn.close()


class GitKeeper:
    """Kept configurations as git commits, driven by decision events (durable campaigns only).

    A landscape's configuration is committed as `config.json`; a train.py campaign passes `render`
    (the configuration as code) and `file_name="train.py"`."""

    def __init__(self, run_dir: Path, space: DiscreteSpace, render: Callable[[Config], str] | None = None,
                 file_name: str = "config.json") -> None:
        from autoresearch_rl.ledger.history import CandidateHistory

        self.space = space
        self.render = render
        self.history = CandidateHistory(run_dir, file_name=file_name)

    def _source(self, config: Config) -> str:
        if self.render is not None:
            return self.render(config)
        return json.dumps(self.space.values(config), indent=1, sort_keys=True, default=str) + "\n"

    def reconcile(self, state: CampaignState) -> None:
        """Make git's incumbent the log's: commit the kept edits git has not seen (after a kill)."""
        if not state.started:
            return
        self.history.ensure(self._source(state.start))
        for e in state.edits:
            if e.verdict == "kept" and self.history.experiment_commit(e.exp) is None:
                self._keep(e.exp, e.config)

    def _keep(self, exp: int, config: Config) -> None:
        sha = self.history.record(self._source(config), f"keep experiment {exp}", self.history.incumbent(), exp)
        self.history.keep(sha)

    def on_event(self, event: Event, state: CampaignState) -> None:
        if isinstance(event, CampaignStarted) or (isinstance(event, Decided) and event.verdict == "kept"):
            self.reconcile(state)
