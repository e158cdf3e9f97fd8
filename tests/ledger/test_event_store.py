"""The durable event store: the same loop, the same decisions; SIGKILLs lose nothing; foreign ledgers are refused."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from autoresearch_rl.agent.search import SEARCH_AGENTS
from autoresearch_rl.core.events import to_json
from autoresearch_rl.errors import UserError
from autoresearch_rl.landscapes.registry import load_landscape
from autoresearch_rl.ledger import Ledger
from autoresearch_rl.ledger.event_store import SQLiteEventStore
from autoresearch_rl.core.loop import Loop
from autoresearch_rl.core.store import MemoryStore
from autoresearch_rl.simulate import build_campaign, simulate

ROOT = Path(__file__).resolve().parents[2]


def _log(run_dir: Path) -> list[str]:
    store = SQLiteEventStore(run_dir)
    try:
        return [to_json(e) for e in store.events()]
    finally:
        store.close()


@pytest.mark.parametrize("agent", SEARCH_AGENTS)
def test_durable_and_in_memory_campaigns_make_the_same_decisions(agent: str, tmp_path: Path) -> None:
    """Proposals, outcomes, decisions and incumbents: the same events, in the same order, for every agent."""
    land = load_landscape("synthetic:dim=4,choices=5", seed=3)
    memory = MemoryStore()
    Loop(build_campaign(land, agent, 3, 50, memory, task=land.name)).run()
    durable = simulate(land, agent, 3, 50, run_dir=tmp_path / "run")
    assert _log(tmp_path / "run") == [to_json(e) for e in memory.events()]
    assert durable.regret == simulate(land, agent, 3, 50).regret


@pytest.mark.parametrize("agent", ("greedy", "ppo"))
def test_durable_and_in_memory_campaigns_of_four_workers_make_the_same_decisions(agent: str, tmp_path: Path) -> None:
    land = load_landscape("synthetic:dim=4,choices=5", seed=4)
    memory = MemoryStore()
    Loop(build_campaign(land, agent, 4, 50, memory, task=land.name, workers=4)).run()
    simulate(land, agent, 4, 50, run_dir=tmp_path / "run", workers=4)
    assert _log(tmp_path / "run") == [to_json(e) for e in memory.events()]


def test_kept_configurations_are_git_commits_on_the_research_branch(tmp_path: Path) -> None:
    land = load_landscape("synthetic:dim=4,choices=5", seed=4)
    result = simulate(land, "greedy", 4, 60, run_dir=tmp_path / "run")
    out = subprocess.run(["git", "--git-dir", str(tmp_path / "run/history/.git"), "log", "--format=%s", "research"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == result.kept + 1 and out[-1] == "baseline config.json"


CHILD = """
import sys
from pathlib import Path
from autoresearch_rl.landscapes.registry import load_landscape
from autoresearch_rl.core.loop import Loop
from autoresearch_rl.core.store import MemoryStore
from autoresearch_rl.simulate import build_campaign, simulate
land = load_landscape("synthetic:dim=4,choices=5", seed=5)
simulate(land, sys.argv[2], 5, 80, run_dir=Path(sys.argv[1]))
"""


@pytest.mark.parametrize("agent", ["greedy", "evolution"])
def test_twenty_sigkills_in_one_campaign_lose_nothing_and_repeat_nothing(agent: str, tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    simulate(load_landscape("synthetic:dim=4,choices=5", seed=5), agent, 5, 80, run_dir=reference)
    expected = _log(reference)
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    kills = 0
    for i in range(20):
        point = "before_event" if i % 2 else "event_recorded"
        env["ARL_KILL_AT"] = f"{point}:{2 + i % 7}"  # die at the 2nd..8th event written in this session
        proc = subprocess.run([sys.executable, "-c", CHILD, str(run), agent], env=env, capture_output=True, text=True)
        assert proc.returncode in (0, -9), proc.stderr
        kills += proc.returncode == -9
    env.pop("ARL_KILL_AT")
    subprocess.run([sys.executable, "-c", CHILD, str(run), agent], env=env, check=True)
    assert kills == 20  # the campaign (~250 events) outlives 20 short sessions
    assert _log(run) == expected


def test_an_experiments_ledger_of_an_earlier_version_is_refused_by_name(tmp_path: Path) -> None:
    with Ledger.open(tmp_path):
        pass
    (tmp_path / "ledger.sqlite").rename(tmp_path / "events.sqlite")
    with pytest.raises(UserError, match="experiments ledger of schema version"):
        SQLiteEventStore(tmp_path)


def test_an_event_log_of_another_schema_is_refused(tmp_path: Path) -> None:
    SQLiteEventStore(tmp_path).close()
    with sqlite3.connect(tmp_path / "events.sqlite") as conn:
        conn.execute("UPDATE store_meta SET value='events-v0' WHERE key='schema'")
    with pytest.raises(UserError, match="events-v0"):
        SQLiteEventStore(tmp_path)


def test_a_corrupt_event_store_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "events.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(UserError, match="corrupt"):
        SQLiteEventStore(tmp_path)
