"""Stop when the agent is credibly worse than the random proposals it is audited against.

Random search is a floor any research agent should clear. When the interleaved audit (see
`selfeval/audit.py`) shows, with enough audit proposals, that the agent's improvement rate is below
random's with high posterior probability, the campaign stops and says to rerun with `--agent random`
(or to look at the agent): spending more budget on a policy that does worse than chance is waste.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoresearch_rl.oracle.rules import CampaignProgress, StopDecision


@dataclass(frozen=True)
class AgentBelowRandom:
    min_random: int = 20  # audit proposals needed before the rule may fire
    confidence: float = 0.95  # fire when P(agent better) < 1 - confidence
    name: str = "audit"

    def check(self, progress: CampaignProgress) -> StopDecision | None:
        a = progress.audit
        if a is None or a.random_n < self.min_random or a.p_agent_better is None:
            return None
        if a.p_agent_better >= 1.0 - self.confidence or a.random_improvements == 0:
            return None
        return StopDecision(self.name, f"audit: the agent improves less often than random proposals "
                                       f"({a.agent_improvements}/{a.agent_n} vs {a.random_improvements}/{a.random_n}, "
                                       f"P(agent better) {a.p_agent_better:.3f}); rerun with --agent random or "
                                       "inspect the agent", a.to_json())  # type: ignore[arg-type]
