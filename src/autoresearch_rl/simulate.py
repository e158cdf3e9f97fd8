"""One simulated campaign, scored on the truth: the in-memory loop on a landscape, read back as a regret curve.

`simulate(task, agent, seed, iters)` runs the real loop (same keep rule, same noise stream and start for
every agent on a seed) and reports what a reviewer needs: the normalised **true** regret of the
incumbent after every iteration, decisions, keeps and false keeps (kept edits whose true value is
not better than the incumbent they replaced), and when the convergence oracle would have fired.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from autoresearch_rl.core.executor import LandscapeExecutor
from autoresearch_rl.core.loop import Campaign, Loop
from autoresearch_rl.core.state import CampaignState
from autoresearch_rl.core.stopper import MaxIterations
from autoresearch_rl.core.store import MemoryStore
from autoresearch_rl.landscapes.base import Landscape, normalized_regret, start_config
from autoresearch_rl.oracle.convergence import Convergence
from autoresearch_rl.oracle.rules import CampaignProgress


@dataclass(frozen=True)
class CampaignResult:
    task: str
    agent: str
    seed: int
    regret: list[float]  # normalised true regret of the incumbent after iterations 1..iters
    decisions: int  # edits decided (kept, discarded or failed)
    kept: int
    false_keeps: int
    oracle_fired_at: int | None  # first iteration at which the convergence rule would stop the campaign
    seconds: float
    events: int
    extra: dict = field(default_factory=dict)


def regret_curve(state: CampaignState, landscape: Landscape, iters: int) -> tuple[list[float], int, int]:
    """(regret after each iteration, kept, false keeps) from the final state, on true values."""
    start_true = landscape.true_value(state.start)
    optimum = landscape.optimum
    kept_at: dict[int, int] = {}  # experiment index at which an edit became the incumbent -> edit exp id
    for e in state.edits:
        if e.verdict == "kept":
            confirms = [c.exp for c in state.experiments[e.exp + 1:] if c.kind == "confirm" and c.parent == e.exp]
            kept_at[max([e.exp, *confirms])] = e.exp
    curve, current, false_keeps, kept = [], start_true, 0, 0
    for e in state.experiments:
        if e.kind == "calibration":
            continue
        if e.exp in kept_at:
            new = landscape.true_value(state.experiments[kept_at[e.exp]].config)
            kept += 1
            false_keeps += new >= current
            current = new
        curve.append(normalized_regret(current, start_true, optimum))
    curve = curve[:iters] + [curve[-1] if curve else normalized_regret(start_true, start_true, optimum)] * (iters - len(curve))
    return curve, kept, false_keeps


def oracle_fire(state: CampaignState, rule: Convergence = Convergence()) -> int | None:
    """The first iteration at which the convergence rule (no policy entropy: search agents) would stop."""
    for t in range(1, state.iterations + 1):
        improvements = tuple(i for i in state.improvements if i <= t)
        if rule.check(CampaignProgress(t, 0.0, 0.0, improvements)) is not None:
            return t
    return None


def simulate(landscape: Landscape, agent_name: str, seed: int, iters: int, task: str | None = None,
             oracle: Convergence = Convergence()) -> CampaignResult:
    from autoresearch_rl.agent.search import make_search_agent

    started = time.perf_counter()
    store = MemoryStore()
    campaign = Campaign(task=task or landscape.name, seed=seed, start=start_config(landscape, seed),
                        proposer=make_search_agent(agent_name, landscape.space, seed, horizon=iters),
                        executor=LandscapeExecutor(landscape), stopper=MaxIterations(iters), store=store,
                        settings={"agent": agent_name, "max_iters": iters})
    state = Loop(campaign).run()
    seconds = time.perf_counter() - started
    curve, kept, false_keeps = regret_curve(state, landscape, iters)
    decisions = sum(e.verdict in ("kept", "discarded", "failed") for e in state.edits)
    return CampaignResult(task or landscape.name, agent_name, seed, curve, decisions, kept, false_keeps,
                          oracle_fire(state, oracle), seconds, len(store.events()))
