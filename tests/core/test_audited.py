"""The self-audit as a proposer decorator: a seeded share of proposals are random configurations; the learner
learns only from its own, still sees every decision, and a campaign killed anywhere resumes to the same log."""

from __future__ import annotations

import numpy as np

from autoresearch_rl.agent.search import make_search_agent
from autoresearch_rl.agent.search.audited import Audited
from autoresearch_rl.core.events import PolicyUpdated, Proposed, to_json
from autoresearch_rl.core.executor import LandscapeExecutor
from autoresearch_rl.core.loop import Campaign, Loop
from autoresearch_rl.core.proposer import Learner
from autoresearch_rl.core.stopper import MaxIterations
from autoresearch_rl.core.store import MemoryStore
from autoresearch_rl.landscapes.base import start_config
from autoresearch_rl.landscapes.synthetic import SyntheticConfig, SyntheticSpaceLandscape
from autoresearch_rl.selfeval.audit import is_audit

LAND = SyntheticSpaceLandscape(SyntheticConfig(seed=4, dim=4, choices=5))


def audited_campaign(store: MemoryStore, fraction: float = 0.3, iters: int = 60) -> Campaign:
    ppo = make_search_agent("ppo_prior", LAND.space, 4, horizon=iters)
    ppo.rollout = 8  # several updates in a short campaign
    return Campaign(task="synthetic", seed=4, start=start_config(LAND, 4),
                    proposer=Audited(ppo, LAND.space, 4, fraction), executor=LandscapeExecutor(LAND),
                    stopper=MaxIterations(iters), store=store)


def test_a_seeded_share_of_proposals_are_random_and_the_learner_learns_from_its_own() -> None:
    store = MemoryStore()
    c = audited_campaign(store)
    assert isinstance(c.proposer, Learner) and c.proposer.name == "ppo_prior"
    state = Loop(c).run()
    proposed = [e for e in store.events() if isinstance(e, Proposed) and e.kind == "edit"]
    audits = [e for e in proposed if e.info.get("audit")]
    assert 0.15 < len(audits) / len(proposed) < 0.45
    assert all("action" not in e.info for e in audits) and all("action" in e.info for e in proposed if e not in audits)
    for i, e in enumerate(proposed):  # the coin is the campaign seed and the proposal's index: a resume draws it again
        assert bool(e.info.get("audit")) == is_audit(4, i, 0.3)
    assert any(isinstance(e, PolicyUpdated) for e in store.events()) and state.iterations == 60


def test_an_audited_campaign_killed_anywhere_resumes_to_the_same_log() -> None:
    whole = MemoryStore()
    Loop(audited_campaign(whole)).run()
    events = list(whole.events())
    for cut in np.random.default_rng(1).choice(len(events), 10, replace=False):
        resumed = MemoryStore(events[:int(cut)])
        Loop(audited_campaign(resumed)).run()
        assert [to_json(e) for e in resumed.events()] == [to_json(e) for e in events], f"cut at {cut}"


def test_without_audits_the_decorator_changes_nothing() -> None:
    plain, audited = MemoryStore(), MemoryStore()
    ppo = make_search_agent("ppo_prior", LAND.space, 4, horizon=60)
    ppo.rollout = 8
    Loop(Campaign(task="synthetic", seed=4, start=start_config(LAND, 4), proposer=ppo,
                  executor=LandscapeExecutor(LAND), stopper=MaxIterations(60), store=plain)).run()
    Loop(audited_campaign(audited, fraction=0.0)).run()
    assert [to_json(e) for e in audited.events()] == [to_json(e) for e in plain.events()]
