"""The campaign's memory: a SQLite ledger of every experiment, a git history of every train.py, results.tsv."""

from __future__ import annotations

from autoresearch_rl.ledger.export import write_results_tsv
from autoresearch_rl.ledger.history import CandidateHistory, HistoryError
from autoresearch_rl.ledger.store import ExperimentRow, Ledger

__all__ = ["CandidateHistory", "ExperimentRow", "HistoryError", "Ledger", "write_results_tsv"]
