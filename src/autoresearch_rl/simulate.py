"""One simulated campaign, scored on the truth: the in-memory loop on a landscape, read back as a regret curve.

`simulate(task, agent, seed, iters)` runs the real loop (same keep rule, same noise stream and start for
every agent on a seed) and reports what a reviewer needs: the normalised **true** regret of the
incumbent after every iteration, decisions, keeps and false keeps (kept edits whose true value is
not better than the incumbent they replaced), and when the convergence oracle would have fired.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch_rl.core.executor import LandscapeExecutor
from autoresearch_rl.core.loop import Campaign, Loop
from autoresearch_rl.core.state import CampaignState
from autoresearch_rl.core.stopper import MaxIterations
from autoresearch_rl.core.store import MemoryStore, Store
from autoresearch_rl.core.workers import SimulatedWorkers
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


def kept_at(state: CampaignState) -> dict[int, int]:
    """Experiment index at which each kept edit became the incumbent (its last confirmation) -> the edit's id."""
    out: dict[int, int] = {}
    for e in state.edits:
        if e.verdict == "kept":
            confirms = [c.exp for c in state.experiments[e.exp + 1:] if c.kind == "confirm" and c.parent == e.exp]
            out[max([e.exp, *confirms])] = e.exp
    return out


def incumbent_true_values(state: CampaignState, landscape: Landscape) -> list[float]:
    """True value of the incumbent just before each experiment, and after the last one (length n + 1)."""
    changes = kept_at(state)
    current = landscape.true_value(state.start)
    out = []
    for e in state.experiments:
        out.append(current)
        if e.exp in changes:
            current = landscape.true_value(state.experiments[changes[e.exp]].config)
    out.append(current)
    return out


def regret_curve(state: CampaignState, landscape: Landscape, iters: int) -> tuple[list[float], int, int]:
    """(regret after each iteration, kept, false keeps) from the final state, on true values.

    A false keep is a kept edit whose true value is not better than that of the incumbent it replaced."""
    start, optimum = landscape.true_value(state.start), landscape.optimum
    values = incumbent_true_values(state, landscape)
    changes = kept_at(state)
    false_keeps = sum(values[i + 1] >= values[i] for i in changes)
    curve = [normalized_regret(values[e.exp + 1], start, optimum) for e in state.experiments if e.kind != "calibration"]
    last = curve[-1] if curve else normalized_regret(start, start, optimum)
    return curve[:iters] + [last] * (iters - len(curve)), len(changes), false_keeps


def oracle_fire(state: CampaignState, rule: Convergence = Convergence()) -> int | None:
    """The first iteration at which the convergence rule (no policy entropy: search agents) would stop."""
    for t in range(1, state.iterations + 1):
        improvements = tuple(i for i in state.improvements if i <= t)
        if rule.check(CampaignProgress(t, 0.0, 0.0, improvements)) is not None:
            return t
    return None


def build_campaign(landscape: Landscape, agent_name: str, seed: int, iters: int, store: Store,
                   task: str | None = None, workers: int = 1) -> Campaign:
    """The campaign every agent runs on (task, seed): the same start, noise stream, keep rule and budget;
    `workers` experiments at once (on a virtual clock, see `core/workers.py`)."""
    from autoresearch_rl.agent.search import make_search_agent

    return Campaign(task=task or landscape.name, seed=seed, start=start_config(landscape, seed),
                    proposer=make_search_agent(agent_name, landscape.space, seed, horizon=iters),
                    executor=SimulatedWorkers(LandscapeExecutor(landscape), workers), stopper=MaxIterations(iters),
                    store=store, settings={"agent": agent_name, "max_iters": iters,
                                           **({"workers": workers} if workers > 1 else {})})


def simulate(landscape: Landscape, agent_name: str, seed: int, iters: int, task: str | None = None,
             oracle: Convergence = Convergence(), run_dir: Path | None = None, workers: int = 1) -> CampaignResult:
    """One campaign; in memory, or durable in `run_dir` (SQLite event log + git of kept versions; resumes).
    `extra`: `finished_at`, the virtual time each experiment's outcome came in (this session's runs), and
    `iteration_exps`, the experiment behind each entry of the regret curve."""
    started = time.perf_counter()
    keeper = None
    if run_dir is None:
        store: Store = MemoryStore()
    else:
        from autoresearch_rl.ledger.event_store import GitKeeper, SQLiteEventStore

        store = SQLiteEventStore(run_dir)
        keeper = GitKeeper(run_dir, landscape.space)
    campaign = build_campaign(landscape, agent_name, seed, iters, store, task, workers)
    loop = Loop(campaign, on_event=keeper.on_event if keeper else None)
    if keeper is not None:
        keeper.reconcile(loop.state)
    state = loop.run()
    seconds = time.perf_counter() - started
    curve, kept, false_keeps = regret_curve(state, landscape, iters)
    decisions = sum(e.verdict in ("kept", "discarded", "failed") for e in state.edits)
    return CampaignResult(task or landscape.name, agent_name, seed, curve, decisions, kept, false_keeps,
                          oracle_fire(state, oracle), seconds, len(store.events()),
                          extra={"finished_at": dict(campaign.executor.finished_at),  # type: ignore[union-attr]
                                 "iteration_exps": [e.exp for e in state.experiments if e.kind != "calibration"]})
