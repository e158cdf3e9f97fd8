"""The in-memory loop: deterministic, resumable from any prefix of its log, paired noise, and the keep rule's contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoresearch_rl.agent.search import SEARCH_AGENTS, make_search_agent
from autoresearch_rl.core.events import (Decided, EventVersionError, PolicyUpdated, Proposed, Resumed, from_json,
                                         to_json)
from autoresearch_rl.core.executor import LandscapeExecutor
from autoresearch_rl.core.loop import Campaign, CalibrationError, Loop
from autoresearch_rl.core.space import DiscreteSpace
from autoresearch_rl.core.state import fold
from autoresearch_rl.core.stopper import MaxIterations
from autoresearch_rl.core.store import MemoryStore
from autoresearch_rl.landscapes.base import start_config
from autoresearch_rl.landscapes.synthetic import SyntheticConfig, SyntheticSpaceLandscape
from autoresearch_rl.simulate import regret_curve, simulate

PURE_AGENTS = ("random", "greedy", "evolution", "bandit", "gp_local", "ppo", "ppo_prior")  # memory = the log: exact resume


def landscape(seed: int = 0, **kw) -> SyntheticSpaceLandscape:
    return SyntheticSpaceLandscape(SyntheticConfig(seed=seed, dim=4, choices=5, **kw))


def campaign(agent: str, seed: int, iters: int, store: MemoryStore | None = None, land=None) -> Campaign:
    land = land or landscape(seed)
    return Campaign(task="synthetic", seed=seed, start=start_config(land, seed),
                    proposer=make_search_agent(agent, land.space, seed, horizon=iters),
                    executor=LandscapeExecutor(land), stopper=MaxIterations(iters), store=store or MemoryStore())


@pytest.mark.parametrize("agent", SEARCH_AGENTS)
def test_every_agent_runs_to_its_budget_and_proposes_valid_configurations(agent: str) -> None:
    c = campaign(agent, 1, 40)
    state = Loop(c).run()
    assert state.iterations == 40 and state.stopped is not None and state.stopped.rule == "max_iters"
    for e in state.experiments:
        c.executor.landscape.space.validate(e.config)
    assert all(e.verdict is not None for e in state.edits)


@pytest.mark.parametrize("agent", SEARCH_AGENTS)
def test_the_same_seed_gives_the_same_campaign(agent: str) -> None:
    a, b = MemoryStore(), MemoryStore()
    Loop(campaign(agent, 2, 30, a)).run()
    Loop(campaign(agent, 2, 30, b)).run()
    assert [to_json(e) for e in a.events()] == [to_json(e) for e in b.events()]


@pytest.mark.parametrize("agent", PURE_AGENTS)
def test_a_campaign_killed_anywhere_resumes_to_the_same_log(agent: str) -> None:
    whole = MemoryStore()
    Loop(campaign(agent, 3, 40, whole)).run()
    events = list(whole.events())
    for cut in np.random.default_rng(0).choice(len(events), 20, replace=False):  # 20 kills at random points
        resumed = MemoryStore(events[:int(cut)])
        Loop(campaign(agent, 3, 40, resumed)).run()
        assert [to_json(e) for e in resumed.events()] == [to_json(e) for e in events], f"cut at {cut}"


def test_state_is_the_fold_of_the_log() -> None:
    store = MemoryStore()
    state = Loop(campaign("greedy", 4, 30, store)).run()
    assert fold(store.events()) == state
    assert fold(from_json(to_json(e)) for e in store.events()) == state


def test_events_of_another_schema_version_are_refused() -> None:
    text = to_json(Proposed(0, (1, 2), "edit", None, {})).replace('"v":1', '"v":0')
    with pytest.raises(EventVersionError, match="version 0"):
        from_json(text)


def test_agents_on_one_seed_see_the_same_noise_for_the_same_measurement() -> None:
    logs = {}
    for agent in ("greedy", "random"):
        store = MemoryStore()
        Loop(campaign(agent, 5, 20, store)).run()
        state = fold(store.events())
        logs[agent] = {(e.config, i): e.value for i, e in enumerate(state.experiments) if e.kind == "calibration"}
    assert logs["greedy"] == logs["random"]  # same start, same calibration draws


def test_regret_is_scored_on_true_values_not_measurements() -> None:
    land = landscape(6, noise=3.0)  # noise three times the typical edit: measurements mislead
    store = MemoryStore()
    state = Loop(campaign("random", 6, 60, store, land)).run()
    curve, kept, false_keeps = regret_curve(state, land, 60)
    start = land.true_value(state.start)
    assert curve[-1] == pytest.approx((land.true_value(state.incumbent) - land.optimum) / (start - land.optimum))
    truly_worse = 0
    previous = start
    for e in state.edits:
        if e.verdict == "kept":
            truly_worse += land.true_value(e.config) >= previous
            previous = land.true_value(e.config)
    assert false_keeps == truly_worse and kept == sum(e.verdict == "kept" for e in state.edits)


def test_a_constant_landscape_keeps_almost_nothing() -> None:
    """On a null landscape every keep is a false keep: the noise-aware rule keeps very few."""
    class Flat:
        name = "flat"
        space = DiscreteSpace(("a", "b", "c"), ((0, 1, 2, 3),) * 3)
        optimum = 1.0

        def evaluate(self, config, rng):
            return 1.0 + 0.1 * float(rng.standard_normal())

        def true_value(self, config):
            return 1.0

    decisions = false_keeps = 0
    for seed in range(3):
        r = simulate(Flat(), "greedy", seed, 100)
        decisions, false_keeps = decisions + r.decisions, false_keeps + r.false_keeps
        assert all(v == 0.0 for v in r.regret)
    assert decisions >= 250 and false_keeps <= 6


def test_a_start_that_always_crashes_fails_calibration_with_a_clear_error() -> None:
    land = landscape(7)
    c = campaign("greedy", 7, 10, land=land)
    crashing = next(cfg for cfg in land.space.all_configs() if math.isinf(land.true_value(cfg)))
    c.start = crashing
    with pytest.raises(CalibrationError, match="crashes too often"):
        Loop(c).run()


class Scaled:
    """A landscape multiplied by 10 and shifted: a scale-free agent must make the same decisions."""

    def __init__(self, inner, scale: float = 10.0, shift: float = 3.0) -> None:
        self.inner, self.scale, self.shift = inner, scale, shift
        self.name, self.space = inner.name, inner.space

    def evaluate(self, config, rng):
        v = self.inner.evaluate(config, rng)
        return None if v is None else self.scale * v + self.shift

    def true_value(self, config):
        return self.scale * self.inner.true_value(config) + self.shift

    @property
    def optimum(self):
        return self.scale * self.inner.optimum + self.shift


@pytest.mark.parametrize("agent", ("ppo", "greedy", "evolution", "bandit", "random"))
def test_decisions_do_not_change_when_the_objective_is_scaled_or_shifted(agent: str) -> None:
    land = landscape(8)
    a, b = MemoryStore(), MemoryStore()
    Loop(campaign(agent, 8, 60, a, land)).run()
    Loop(campaign(agent, 8, 60, b, Scaled(land))).run()
    configs = lambda s: [(e.config, e.kind) for e in s.events() if isinstance(e, Proposed)]  # noqa: E731
    verdicts = lambda s: [e.verdict for e in s.events() if isinstance(e, Decided)]  # noqa: E731
    assert configs(a) == configs(b)
    assert verdicts(a) == verdicts(b)


def test_a_stopped_campaign_reopened_with_a_larger_budget_goes_on_and_with_the_same_one_does_not() -> None:
    store = MemoryStore()
    Loop(campaign("evolution", 9, 20, store)).run()
    first = [to_json(e) for e in store.events()]
    Loop(campaign("evolution", 9, 20, store)).run()
    assert [to_json(e) for e in store.events()] == first  # finished: nothing to do
    state = Loop(campaign("evolution", 9, 30, store)).run()
    assert [to_json(e) for e in store.events()][:len(first)] == first
    assert to_json(Resumed("max_iters")) in [to_json(e) for e in store.events()]
    assert state.iterations == 30 and state.stopped is not None and fold(store.events()) == state


def test_a_policy_update_cut_off_by_a_kill_is_made_on_resume_as_it_would_have_been() -> None:
    whole = MemoryStore()
    Loop(campaign("ppo_prior", 10, 45, whole)).run()
    events = list(whole.events())
    update = next(i for i, e in enumerate(events) if isinstance(e, PolicyUpdated))
    resumed = MemoryStore(events[:update])  # killed after the decision, before the update was recorded
    Loop(campaign("ppo_prior", 10, 45, resumed)).run()
    assert [to_json(e) for e in resumed.events()] == [to_json(e) for e in events]
