"""Guarantees of the git candidate history: kept versions form a branch, every candidate stays reachable."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest

from autoresearch_rl.errors import UserError
from autoresearch_rl.ledger import CandidateHistory

BASE = "LR = 0.04\nprint('train')\n"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_DIR": str(repo / ".git")}
    return subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def history(tmp_path: Path) -> CandidateHistory:
    h = CandidateHistory(tmp_path)
    h.ensure(BASE)
    return h


def test_ensure_creates_research_branch_with_initial_incumbent(history: CandidateHistory) -> None:
    head = history.incumbent()
    assert head is not None
    assert history.source_at(head) == BASE
    assert (history.root / "train.py").read_text() == BASE
    assert git(history.root, "symbolic-ref", "HEAD").strip() == "refs/heads/research"


def test_ensure_is_idempotent_and_keeps_the_incumbent(history: CandidateHistory, tmp_path: Path) -> None:
    head = history.incumbent()
    again = CandidateHistory(tmp_path)
    again.ensure("something else\n")
    assert again.incumbent() == head


def test_empty_history_has_no_incumbent(tmp_path: Path) -> None:
    h = CandidateHistory(tmp_path)
    assert h.incumbent() is None  # before the repository exists
    h.ensure()
    assert h.incumbent() is None


def test_record_parents_candidate_on_incumbent(history: CandidateHistory) -> None:
    parent = history.incumbent()
    sha = history.record("LR = 0.05\n", "LR 0.04 -> 0.05", parent, exp_id=3)
    assert git(history.root, "rev-parse", f"{sha}^").strip() == parent
    assert history.experiment_commit(3) == sha
    assert "Experiment: 3" in git(history.root, "log", "-1", "--format=%B", sha)
    assert history.incumbent() == parent  # recording does not keep


def test_discarded_candidate_stays_reachable_by_ref(history: CandidateHistory) -> None:
    sha = history.record("LR = 0.5\n", "too high", history.incumbent(), exp_id=1)
    git(history.root, "reflog", "expire", "--expire=now", "--all")
    git(history.root, "gc", "--prune=now", "--quiet")
    assert history.source_at(sha) == "LR = 0.5\n"
    assert git(history.root, "for-each-ref", "--format=%(refname)", "refs/experiments").split() == ["refs/experiments/1"]


def test_identical_sources_get_distinct_experiment_refs(history: CandidateHistory) -> None:
    parent = history.incumbent()
    a = history.record("LR = 0.05\n", "same", parent, exp_id=1)
    b = history.record("LR = 0.05\n", "same", parent, exp_id=2)
    assert a != b
    assert (history.experiment_commit(1), history.experiment_commit(2)) == (a, b)
    assert history.source_at(a) == history.source_at(b)


def test_keep_advances_branch_and_working_tree(history: CandidateHistory) -> None:
    first = history.record("LR = 0.05\n", "kept", history.incumbent(), exp_id=1)
    history.keep(first)
    second = history.record("LR = 0.06\n", "kept again", first, exp_id=2)
    history.keep(second)
    assert history.incumbent() == second
    assert (history.root / "train.py").read_text() == "LR = 0.06\n"
    assert git(history.root, "status", "--porcelain") == ""  # index matches too
    assert len(git(history.root, "rev-list", "research").split()) == 3


def test_keep_overwrites_a_hand_edited_working_tree(history: CandidateHistory) -> None:
    (history.root / "train.py").write_text("scribbled\n")
    sha = history.record("LR = 0.07\n", "kept", history.incumbent(), exp_id=1)
    history.keep(sha)
    assert (history.root / "train.py").read_text() == "LR = 0.07\n"


def test_source_round_trips_bytes_exactly(history: CandidateHistory) -> None:
    source = "# ünïcode\r\nX = 1\t# tab\n\n"
    assert history.source_at(history.record(source, "crlf", None, exp_id=1)) == source


def test_stale_index_lock_is_removed(history: CandidateHistory, caplog: pytest.LogCaptureFixture) -> None:
    sha = history.record("LR = 0.08\n", "candidate", history.incumbent(), exp_id=1)
    (history.root / ".git" / "index.lock").write_text("")  # a controller killed inside `git read-tree`
    with caplog.at_level(logging.WARNING, logger="autoresearch_rl.ledger.history"):
        history.keep(sha)
    assert not (history.root / ".git" / "index.lock").exists()
    assert any("stale git lock" in r.message for r in caplog.records)
    assert (history.root / "train.py").read_text() == "LR = 0.08\n"


def test_history_inside_another_repository_leaves_it_alone(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    outer.mkdir()
    subprocess.run(["git", "init", "-q", str(outer)], check=True)
    (outer / "runs" / "r" / "history").mkdir(parents=True)  # history dir exists but holds no repository yet
    h = CandidateHistory(outer / "runs" / "r")
    assert h.incumbent() is None
    h.ensure(BASE)
    assert (h.root / ".git").is_dir()
    assert subprocess.run(["git", "-C", str(outer), "rev-parse", "--verify", "-q", "HEAD"], capture_output=True).returncode != 0


def test_missing_git_raises_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(UserError, match="git is not installed"):
        CandidateHistory(tmp_path)
