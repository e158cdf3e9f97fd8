"""The core loop with N workers: runs overlap, the budget holds, nothing is lost or run twice after a kill,
rewards are against the incumbent a candidate was derived from and keeps against the current one."""

from __future__ import annotations

import numpy as np
import pytest

from autoresearch_rl.agent.search import make_search_agent
from autoresearch_rl.core.events import Aborted, Crashed, Decided, Proposed, Scored, Stopped, to_json
from autoresearch_rl.core.decider import NoiseAwareDecider
from autoresearch_rl.core.executor import LandscapeExecutor
from autoresearch_rl.core.loop import Campaign, Loop
from autoresearch_rl.core.state import fold
from autoresearch_rl.core.stopper import MaxIterations
from autoresearch_rl.core.store import MemoryStore
from autoresearch_rl.core.workers import SimulatedWorkers
from autoresearch_rl.landscapes.base import start_config
from autoresearch_rl.landscapes.synthetic import SyntheticConfig, SyntheticSpaceLandscape

OUTCOMES = (Scored, Crashed, Aborted)


class Timed(SyntheticSpaceLandscape):
    """The synthetic landscape with run durations that differ by configuration (1 to 5 time units)."""

    def cost_s(self, config) -> float:
        return 1.0 + sum(config) % 5


def campaign(agent: str, seed: int, iters: int, workers: int, store: MemoryStore | None = None,
             noise: float = 0.5) -> Campaign:
    land = Timed(SyntheticConfig(seed=seed, dim=4, choices=5, noise=noise))
    return Campaign(task="synthetic", seed=seed, start=start_config(land, seed),
                    proposer=make_search_agent(agent, land.space, seed, horizon=iters),
                    executor=SimulatedWorkers(LandscapeExecutor(land), workers), stopper=MaxIterations(iters),
                    store=store or MemoryStore())


def in_flight_counts(events) -> list[int]:
    """Experiments proposed and not yet finished, after each event."""
    pending, counts = set(), []
    for e in events:
        if isinstance(e, Proposed):
            pending.add(e.exp)
        elif isinstance(e, OUTCOMES):
            pending.discard(e.exp)
        counts.append(len(pending))
    return counts


@pytest.mark.parametrize("agent", ("greedy", "evolution", "ppo"))
@pytest.mark.parametrize("workers", (2, 4))
def test_n_workers_overlap_runs_and_spend_exactly_the_budget(agent: str, workers: int) -> None:
    store = MemoryStore()
    state = Loop(campaign(agent, 1, 40, workers, store)).run()
    events = list(store.events())
    counts = in_flight_counts(events)
    assert max(counts) == workers and counts[-1] == 0  # runs overlapped, never more than the workers; all drained
    assert state.iterations == 40 and isinstance(events[-1], Stopped)
    assert all(e.outcome != "pending" for e in state.experiments)
    assert all(e.verdict not in (None, "confirm") for e in state.edits)  # every edit decided (confirmed or not)
    assert fold(events) == state


def test_outcomes_arrive_in_the_order_the_runs_finish() -> None:
    c = campaign("random", 2, 30, 4)
    store = c.store
    Loop(c).run()
    finished = c.executor.finished_at
    times = [finished[e.exp] for e in store.events() if isinstance(e, OUTCOMES)]
    assert times == sorted(times)
    order = [e.exp for e in store.events() if isinstance(e, OUTCOMES)]
    assert order != sorted(order)  # a short run started later finished first


def test_one_worker_is_the_synchronous_loop() -> None:
    a, b = MemoryStore(), MemoryStore()
    Loop(campaign("evolution", 3, 40, 1, a)).run()
    c = campaign("evolution", 3, 40, 1, b)
    c.executor = c.executor.executor  # a bare Executor: the loop wraps it in one worker
    Loop(c).run()
    assert [to_json(e) for e in a.events()] == [to_json(e) for e in b.events()]
    assert max(in_flight_counts(a.events())) == 1


@pytest.mark.parametrize("agent", ("greedy", "evolution"))
def test_a_campaign_of_four_workers_killed_anywhere_loses_nothing_and_repeats_nothing(agent: str) -> None:
    whole = MemoryStore()
    Loop(campaign(agent, 4, 40, 4, whole)).run()
    events = list(whole.events())
    for cut in np.random.default_rng(1).choice(len(events), 20, replace=False):
        prefix = events[:int(cut)]
        resumed = MemoryStore(prefix)
        state = Loop(campaign(agent, 4, 40, 4, resumed)).run()
        log = list(resumed.events())
        assert [to_json(e) for e in log[:len(prefix)]] == [to_json(e) for e in prefix]  # nothing lost
        outcomes = [e.exp for e in log if isinstance(e, OUTCOMES)]
        assert sorted(outcomes) == list(range(len(state.experiments)))  # every run exactly once
        assert state.iterations == 40 and all(e.verdict not in (None, "confirm") for e in state.edits)


def test_a_resumed_run_measures_what_the_killed_one_would_have() -> None:
    """The measurement's seed comes from (campaign seed, configuration, earlier runs of it), not from timing."""
    whole = MemoryStore()
    Loop(campaign("random", 5, 30, 4, whole)).run()
    events = list(whole.events())
    first_outcome = next(i for i, e in enumerate(events) if isinstance(e, Scored) and e.exp > 2)
    resumed = MemoryStore(events[:first_outcome])  # killed with four runs in flight
    Loop(campaign("random", 5, 30, 4, resumed)).run()
    values = lambda log: {e.exp: e.value for e in log if isinstance(e, Scored)}  # noqa: E731
    before, after = values(events), values(resumed.events())
    in_flight = {e.exp for e in events[:first_outcome] if isinstance(e, Proposed)} - set(values(events[:first_outcome]))
    assert in_flight and all(after[x] == before[x] for x in in_flight if x in before)


def test_rewards_are_against_the_proposal_time_incumbent_and_keeps_against_the_current_one() -> None:
    checked_stale = kept = 0
    for seed in range(6):
        kept_here, stale = _check_rewards_and_keeps(seed)
        kept, checked_stale = kept + kept_here, checked_stale + stale
    assert kept and checked_stale  # keeps were seen, some of edits proposed before an earlier keep


def _check_rewards_and_keeps(seed: int) -> tuple[int, int]:
    store = MemoryStore()
    Loop(campaign("random", seed, 80, 8, store, noise=0.05)).run()  # little noise: many keeps, close together
    state, stale = fold(()), 0
    for event in store.events():
        if isinstance(event, Decided) and event.verdict == "kept":
            e = state.experiments[event.exp]
            runs = state.runs_of(event.exp)
            assert sum(runs) / len(runs) < state.incumbent_value - event.margin + 1e-12  # beats the current one
            stale += e.incumbent_value != state.incumbent_value
        if isinstance(event, Decided) and event.verdict in ("kept", "discarded"):
            e = state.experiments[event.exp]
            runs = state.runs_of(event.exp)
            assert event.reward == NoiseAwareDecider().reward(e.incumbent_value, sum(runs) / len(runs), state.sigma)
        state = state.apply(event)
    return len(state.improvements), stale


def test_the_stopper_drains_the_runs_in_flight_before_the_campaign_stops() -> None:
    store = MemoryStore()
    state = Loop(campaign("greedy", 7, 25, 4, store)).run()
    events = list(store.events())
    stop_at = next(i for i, e in enumerate(events) if isinstance(e, Stopped))
    assert stop_at == len(events) - 1 and in_flight_counts(events)[stop_at] == 0
    assert state.iterations == 25
