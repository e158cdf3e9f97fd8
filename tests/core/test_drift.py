"""Drift: a machine whose speed changes mid-campaign is noticed, decisions wait for a paired re-measurement,
and no edit is kept because the machine got faster or slower."""

from __future__ import annotations

import numpy as np
import pytest

from autoresearch_rl.agent.search import SEARCH_AGENTS
from autoresearch_rl.core.drift import DriftMonitor
from autoresearch_rl.core.events import Decided, Rebased, Scored, from_json, to_json
from autoresearch_rl.core.loop import Loop
from autoresearch_rl.core.space import Config
from autoresearch_rl.core.store import MemoryStore
from autoresearch_rl.landscapes.constant import ConstantLandscape
from autoresearch_rl.landscapes.registry import LandscapeSpecError, load_landscape, split_tasks
from autoresearch_rl.simulate import build_campaign, regret_curve

STEP_WORSE = "constant+drift:at=60,score=0.3,throughput=-0.3"  # the machine gets loaded halfway
STEP_BETTER = "constant+drift:at=60,score=-0.3,throughput=0.3"  # the load goes away halfway


def run(spec: str, agent: str = "greedy", seed: int = 0, iters: int = 120, drift: DriftMonitor | None = DriftMonitor(),
        landscape=None):
    land = landscape or load_landscape(spec, seed)
    c = build_campaign(land, agent, seed, iters, MemoryStore(), task=spec)
    c.drift = drift
    state = Loop(c).run()
    return state, list(c.store.events()), land


def kept_after(state, exp: int) -> list[int]:
    return [e.exp for e in state.edits if e.verdict == "kept" and e.exp >= exp]


@pytest.mark.parametrize("spec", [STEP_WORSE, STEP_BETTER])
def test_a_step_change_is_flagged_deferred_and_rebased_and_keeps_nothing(spec: str) -> None:
    for seed in range(3):
        state, events, _ = run(spec, seed=seed)
        at = next(e.exp for e in state.experiments if e.exp >= 60 and e.kind == "edit")
        deferred = [ev for ev in events if isinstance(ev, Decided) and ev.verdict == "deferred"]
        rebased = [ev for ev in events if isinstance(ev, Rebased)]
        assert deferred and deferred[0].exp == at, "the first run on the changed machine is flagged and deferred"
        assert rebased[0].from_exp == at and "throughput" in rebased[0].reason
        paired = state.experiments[at + 1]
        assert paired.kind == "remeasure" and paired.parent == at
        assert state.experiments[at].verdict in ("discarded", "failed")  # decided after the re-measurements
        assert kept_after(state, 55) == [], f"seed {seed}: an edit was kept across the machine change"


def test_without_the_monitor_the_faster_machine_is_taken_for_research() -> None:
    """The control: the same campaign with the monitor off keeps the first edit after the load goes away."""
    state, _, _ = run(STEP_BETTER, drift=None)
    assert kept_after(state, 60)[:1] == [next(e.exp for e in state.edits if e.exp >= 60)]


def test_a_stationary_machine_is_never_flagged() -> None:
    state, events, _ = run("constant+drift", iters=200)
    assert not [ev for ev in events if isinstance(ev, Rebased)]
    assert not [ev for ev in events if isinstance(ev, Decided) and ev.verdict == "deferred"]
    periodic = [e for e in state.experiments if e.kind == "remeasure" and e.info.get("why") == "periodic"]
    assert periodic and all(b.exp - a.exp >= 20 for a, b in zip(periodic, periodic[1:]))


def test_slow_drift_is_followed_by_periodic_remeasurement() -> None:
    """The load lifts slowly (30% faster, 15% better in 300 runs): periodic re-measurements of the incumbent notice
    the speed and rebase, which removes part of the drift's false keeps (a drift below the tolerance still leaks)."""
    spec = "constant+drift:score_trend=-0.0005,throughput_trend=0.001"
    kept = kept_without = rebases = 0
    for seed in range(10):
        state, events, _ = run(spec, seed=seed, iters=300)
        rebases += sum(isinstance(ev, Rebased) for ev in events)
        kept += len(kept_after(state, 0))
        kept_without += len(kept_after(run(spec, seed=seed, iters=300, drift=None)[0], 0))
    assert rebases >= 10
    assert kept < kept_without


class SlowCandidates(ConstantLandscape):
    """A machine that never changes, where configurations with x0 >= 3 train 40% slower (a bigger model)."""

    def measure(self, config: Config, rng: np.random.Generator, t: int) -> tuple[float | None, float]:
        speed = 1000.0 * (0.6 if config[0] >= 3 else 1.0) * (1 + 0.02 * float(rng.standard_normal()))
        return self.evaluate(config, rng), speed


def test_a_candidate_slow_by_itself_is_checked_against_the_incumbent_and_not_rebased() -> None:
    land = SlowCandidates()
    state, events, _ = run("slow", landscape=land, agent="random", iters=60)
    deferred = [ev.exp for ev in events if isinstance(ev, Decided) and ev.verdict == "deferred"]
    assert deferred, "the random agent proposes slow configurations"
    assert not [ev for ev in events if isinstance(ev, Rebased)]
    for exp in deferred:
        assert state.experiments[exp + 1].kind == "remeasure"
        assert state.experiments[exp].verdict in ("kept", "discarded")  # decided after the paired run


@pytest.mark.parametrize("agent", ["random", "greedy", "evolution"])
def test_a_drifting_campaign_killed_anywhere_resumes_to_the_same_log(agent: str) -> None:
    whole, events, land = run(STEP_BETTER, agent=agent, iters=90)
    for cut in np.random.default_rng(1).choice(len(events), 12, replace=False):
        c = build_campaign(land, agent, 0, 90, MemoryStore(events[:int(cut)]), task=STEP_BETTER)
        Loop(c).run()
        assert [to_json(e) for e in c.store.events()] == [to_json(e) for e in events]


@pytest.mark.parametrize("spec", ["constant+drift", "constant+drift:at=150,score=0.3,throughput=-0.3"])
def test_at_most_one_false_keep_per_300_decisions_for_every_agent(spec: str) -> None:
    """Stationary, and with the issue's step (+30% score, -30% throughput halfway); on a constant landscape every
    keep is false. Pooled over agents the rate must be <= 1 per 300 decisions; per agent, 3 seeds are few, so one
    keep of slack (BENCHMARKS.md gives every agent's rate over 50 seeds)."""
    land = load_landscape(spec, 0)
    total_decisions = total_false = 0
    for agent in SEARCH_AGENTS:
        decisions = false_keeps = 0
        for seed in range(3):
            state, _, _ = run(spec, agent=agent, seed=seed, iters=300, landscape=land)
            false_keeps += regret_curve(state, land, 300)[2]
            decisions += sum(e.verdict in ("kept", "discarded", "failed") for e in state.edits)
        assert false_keeps <= decisions / 300 + 1, f"{agent}: {false_keeps} false keeps in {decisions} decisions"
        total_decisions += decisions
        total_false += false_keeps
    assert total_false <= total_decisions / 300, f"{total_false} false keeps in {total_decisions} decisions"


def test_events_of_an_older_log_without_throughput_still_load() -> None:
    old = '{"cost_s":0.0,"exp":3,"type":"Scored","v":1,"value":1.5}'
    assert from_json(old) == Scored(3, 1.5)
    rebased = Rebased(7, 812.5, "incumbent throughput -30% against the reference")
    assert from_json(to_json(rebased)) == rebased


def test_drift_specs_parse_and_bad_ones_are_one_line_errors() -> None:
    assert split_tasks("constant+drift:at=5,score=0.3,synthetic:dim=4,noise=1.0,nb201:cifar10") == [
        "constant+drift:at=5,score=0.3", "synthetic:dim=4,noise=1.0", "nb201:cifar10"]
    with pytest.raises(LandscapeSpecError, match="bad drift model"):
        load_landscape("constant+drift:speed=2")
    with pytest.raises(LandscapeSpecError, match="bad constant landscape"):
        load_landscape("constant:dim=0")
    with pytest.raises(ValueError):
        DriftMonitor(min_tolerance=0.0)


class FastAndBetter(ConstantLandscape):
    """A machine that never changes, where configurations with x0 >= 3 train 80% faster and score 0.1 better
    (a smaller model that sees more tokens in the budget: what a real campaign keeps)."""

    def measure(self, config: Config, rng: np.random.Generator, t: int) -> tuple[float | None, float]:
        fast = config[0] >= 3
        speed = 1000.0 * (1.8 if fast else 1.0) * (1 + 0.02 * float(rng.standard_normal()))
        return self.evaluate(config, rng) - (0.1 if fast else 0.0), speed

    def true_value(self, config: Config) -> float:
        return self.config.value - (0.1 if config[0] >= 3 else 0.0)


def test_keeping_a_much_faster_candidate_is_not_taken_for_a_changed_machine() -> None:
    """The incumbent's re-run paired with a fast candidate is compared with the speed of its own code, not
    with the candidate that replaced it: no rebase, no re-measurements of the new incumbent for nothing."""
    from autoresearch_rl.agent.search import make_search_agent
    from autoresearch_rl.core.executor import LandscapeExecutor
    from autoresearch_rl.core.loop import Campaign
    from autoresearch_rl.core.stopper import MaxIterations

    for seed in range(3):
        land = FastAndBetter()
        c = Campaign("fast", seed, (0,) * 6, make_search_agent("random", land.space, seed, horizon=60),
                     LandscapeExecutor(land), MaxIterations(60), store=MemoryStore())
        state = Loop(c).run()
        events = list(c.store.events())
        kept = [e for e in state.edits if e.verdict == "kept"]
        assert kept and kept[0].config[0] >= 3
        assert any(ev.verdict == "deferred" and ev.exp == kept[0].exp for ev in events if isinstance(ev, Decided))
        assert not [ev for ev in events if isinstance(ev, Rebased)], f"seed {seed}"
        assert not [e for e in state.experiments if e.info.get("why", "").startswith("new conditions")]
