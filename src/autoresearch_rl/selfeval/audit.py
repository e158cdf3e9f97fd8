"""Is the agent better than chance on *this* campaign? A running comparison with interleaved random proposals.

A fixed fraction of proposals (default 10%, chosen by a seeded coin per proposal index, so a resumed
campaign audits the same iterations) come from uniform random search instead of the agent. Both
kinds run through the same loop, against the same incumbents, at the same moments of the campaign,
so their improvement rates are directly comparable: no model of the environment and no off-policy
estimator (whose importance weights would blow up for a policy that has concentrated) is needed.
The price is the audit fraction of the budget, spent on proposals that are still useful search.

An *improvement* is a candidate that beat the incumbent it was derived from by the keep margin.
Each rate gets a Beta(1/2, 1/2) posterior; `p_agent_better` = P(agent's rate > random's rate).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from autoresearch_rl.ledger import ExperimentRow

_GRID = np.linspace(0.0005, 0.9995, 1000)  # rates, for the posterior comparison by quadrature


def is_audit(campaign_seed: int, proposal_index: int, fraction: float) -> bool:
    """Whether proposal `proposal_index` is a random audit proposal (deterministic per campaign)."""
    if fraction <= 0:
        return False
    digest = hashlib.sha256(f"audit:{campaign_seed}:{proposal_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64 < fraction


@dataclass(frozen=True)
class AuditSummary:
    agent_n: int
    agent_improvements: int
    random_n: int
    random_improvements: int
    agent_mean_reward: float | None
    random_mean_reward: float | None
    p_agent_better: float | None  # None until both sides have proposals

    @property
    def agent_rate(self) -> float | None:
        return self.agent_improvements / self.agent_n if self.agent_n else None

    @property
    def random_rate(self) -> float | None:
        return self.random_improvements / self.random_n if self.random_n else None

    def line(self) -> str:
        """One line for `arl status` and the report."""
        if not self.random_n:
            return f"audit: no random audit proposals yet (agent: {self.agent_improvements}/{self.agent_n} improved)"
        p = "-" if self.p_agent_better is None else f"{self.p_agent_better:.2f}"
        return (f"audit: agent improved {self.agent_improvements}/{self.agent_n} "
                f"({100 * (self.agent_rate or 0):.0f}%), random {self.random_improvements}/{self.random_n} "
                f"({100 * (self.random_rate or 0):.0f}%); P(agent better) {p}")

    def to_json(self) -> dict[str, object]:
        return {"agent_n": self.agent_n, "agent_improvements": self.agent_improvements, "random_n": self.random_n,
                "random_improvements": self.random_improvements, "agent_mean_reward": self.agent_mean_reward,
                "random_mean_reward": self.random_mean_reward, "p_agent_better": self.p_agent_better}


def _beta_density(k: int, n: int) -> np.ndarray:
    a, b = k + 0.5, n - k + 0.5
    log = (a - 1) * np.log(_GRID) + (b - 1) * np.log1p(-_GRID)
    density = np.exp(log - log.max())
    return density / density.sum()


def p_better(k_a: int, n_a: int, k_b: int, n_b: int) -> float:
    """P(rate_a > rate_b) under independent Beta(k + 1/2, n - k + 1/2) posteriors."""
    da, db = _beta_density(k_a, n_a), _beta_density(k_b, n_b)
    cdf_b = np.cumsum(db) - db / 2  # P(rate_b < x), midpoint rule
    return float(np.clip((da * cdf_b).sum(), 0.0, 1.0))


def _scores(rows: list[ExperimentRow]) -> dict[int, float]:
    """Each scored candidate's val_bpb, averaged with its confirmation runs (what the keep rule judged)."""
    runs: dict[int, list[float]] = {}
    for r in rows:
        if r.val_bpb is None or not r.status.scored:
            continue
        if r.role == "candidate":
            runs.setdefault(r.id, []).insert(0, r.val_bpb)
        elif r.role == "confirmation" and r.parent_id is not None:
            runs.setdefault(r.parent_id, []).append(r.val_bpb)
    return {k: sum(v) / len(v) for k, v in runs.items()}


def audit(rows: Iterable[ExperimentRow], margin: float) -> AuditSummary:
    """Decided candidates split into the agent's and the random audit's (`proposal["audit"]`), compared."""
    rows = list(rows)
    scores = _scores(rows)
    agent: list[tuple[bool, float]] = []
    rand: list[tuple[bool, float]] = []
    for r in rows:
        if r.role != "candidate" or r.reward is None:
            continue
        parent = r.proposal.get("incumbent_val_bpb")
        score = scores.get(r.id)
        won = score is not None and parent is not None and float(parent) - score > margin
        (rand if r.proposal.get("audit") else agent).append((won, r.reward))
    k_a, k_r = sum(w for w, _ in agent), sum(w for w, _ in rand)
    mean = lambda xs: sum(x for _, x in xs) / len(xs) if xs else None  # noqa: E731
    p = p_better(k_a, len(agent), k_r, len(rand)) if agent and rand else None
    return AuditSummary(len(agent), k_a, len(rand), k_r, mean(agent), mean(rand), p)
