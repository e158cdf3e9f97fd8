"""What `arl run` is configured with: its settings, the incumbent record the ledger shows, the campaign's base
train.py and the seeds it derives (read by the CLI, `cli_core_run.py`, the ledger projection, verify)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from autoresearch_rl.campaign import Campaign
from autoresearch_rl.decision import KeepRule, NoiseConfig, RewardConfig
from autoresearch_rl.oracle import OracleConfig
from autoresearch_rl.selfeval.abort import AbortConfig


@dataclass(frozen=True)
class LoopConfig:
    """How the loop decides and when it stops (what runs is the campaign's preset)."""

    seed: int = 0  # campaign seed: proposers and training seeds derive from it
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    keep: KeepRule = field(default_factory=KeepRule)
    reward: RewardConfig = field(default_factory=RewardConfig)
    oracle: OracleConfig = field(default_factory=OracleConfig)
    smoke_check: bool = True  # validate each candidate with one tiny step before spending its budget
    audit_fraction: float = 0.0  # share of proposals made by uniform random search to audit a learning agent
    abort: AbortConfig | None = None  # early abort of candidates whose loss curve is doomed; None: every run finishes


@dataclass(frozen=True)
class Incumbent:
    exp_id: int
    sha: str
    val_bpb: float
    source_hash: str

    def to_json(self) -> dict[str, Any]:
        return {"exp_id": self.exp_id, "sha": self.sha, "val_bpb": self.val_bpb, "source_hash": self.source_hash}


def resolve_base_source(campaign: Campaign, requested: str | None) -> str:
    """The campaign's base train.py: the recorded one when it has started, else `requested` or the template."""
    meta = campaign.ledger.meta()
    if meta.get("base_commit"):
        return campaign.history.source_at(meta["base_commit"])
    calibration = [r for r in campaign.ledger.experiments() if r.role == "calibration" and r.commit_sha]
    if calibration:
        return campaign.history.source_at(calibration[0].commit_sha)
    if requested is not None:
        return requested
    from autoresearch_rl.target import template_source

    return template_source()


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from any tuple of values (stable across processes, unlike hash())."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "little") & 0x7FFFFFFF
