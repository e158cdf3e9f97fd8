"""A proposal becomes the train.py that runs: an edit applied to its parent, or a configuration written
into the base file; refused, with the reason, when it does not apply or when that code already ran.

Refused candidates are still recorded (INVALID_EDIT, penalised, never run), so an agent that asks for
a masked action or re-proposes code that ran learns from it and the ledger tells why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger import CandidateHistory, ExperimentRow
from autoresearch_rl.target.edits import EditError, unified_diff
from autoresearch_rl.target.params import apply_params
from autoresearch_rl.target.space import ActionSpace
from autoresearch_rl.target.tokens import code_fingerprint


@dataclass(frozen=True)
class Candidate:
    source: str
    description: str
    diff: str
    rejected: str = ""  # why it is not run ("": run it)


class Materialiser:
    def __init__(self, history: CandidateHistory, space: ActionSpace, base_source: str) -> None:
        self.history = history
        self.space = space
        self.base_source = base_source
        self._fingerprints: dict[str, str] = {}  # commit sha -> code_fingerprint of its train.py (git reads cost)

    def candidate(self, parent_source: str, payload: dict[str, Any], rows: Sequence[ExperimentRow],
                  retry: bool = False) -> Candidate:
        """The train.py of a proposal against `parent_source` (a retry re-runs an interrupted one: no twin check)."""
        try:
            if payload.get("params") is not None:
                source, description = apply_params(self.base_source, payload["params"])
            else:
                edit = self.space.apply(self.space.index(payload["operator"], payload["arg"]), parent_source)
                source, description = edit.after, edit.description
        except EditError as exc:  # a proposer asked for a masked action: recorded and penalised, not fatal
            return Candidate(parent_source, f"{payload['operator']} {payload['arg']} (not applicable)", "", str(exc))
        rejected = ""
        if not retry and (twin := self.ran_before(source, rows)) is not None:
            rejected = f"same code as experiment {twin} (comments and layout aside): answered from the ledger, not run"
        return Candidate(source, description, unified_diff(parent_source, source), rejected)

    def ran_before(self, source: str, rows: Sequence[ExperimentRow]) -> int | None:
        """The first experiment that ran this very code (a duplicate candidate would only re-measure it)."""
        key = code_fingerprint(source)
        for row in rows:
            if not row.commit_sha or row.status in (Status.RUNNING, Status.INTERRUPTED, Status.INVALID_EDIT):
                continue
            if row.commit_sha not in self._fingerprints:
                self._fingerprints[row.commit_sha] = code_fingerprint(self.history.source_at(row.commit_sha))
            if self._fingerprints[row.commit_sha] == key:
                return row.id
        return None
