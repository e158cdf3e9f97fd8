"""Optuna TPE over the tunable constants: the config-space view of the same search.

TPE does not edit the incumbent; it proposes a whole configuration of the base train.py's knobs
(log/linear floats, ints, powers of two, choices) and learns from every scored one. Structural
operators are outside its view, which is the point of comparing it with the edit-space agents.
Its memory is the Optuna study, rebuilt on resume by replaying the ledger's transitions.
"""

from __future__ import annotations

import logging

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from autoresearch_rl.agent.protocol import Proposal, SearchState, Transition
from autoresearch_rl.target.grid import halvings_and_doublings, searchable_knobs
from autoresearch_rl.target.knobs import Knob

log = logging.getLogger(__name__)


def knob_distribution(knob: Knob) -> BaseDistribution | None:
    """Optuna's view of a knob's declared (or inferred) range; None when it has none."""
    s = knob.spec
    if s.kind in ("choice", "bool"):
        return CategoricalDistribution(list(s.choices))
    assert s.low is not None and s.high is not None
    if s.kind == "log":
        return FloatDistribution(s.low, s.high, log=True)
    if s.kind == "linear":
        return FloatDistribution(s.low, s.high)
    if s.kind == "int":
        return IntDistribution(int(s.low), int(s.high))
    if s.kind == "log-int":  # the doublings and halvings of the value that stay in range
        options = halvings_and_doublings(int(knob.value), s.low, s.high)
        return CategoricalDistribution(sorted(options)) if len(options) > 1 else None
    return None


class TPEProposer:
    """Optuna's TPE sampler behind ask/tell; minimises the candidate's val_bpb."""

    name = "tpe"

    def __init__(self, base_source: str, seed: int = 0, device: str | None = None) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.distributions = {k.name: d for k in searchable_knobs(base_source, device)
                              if (d := knob_distribution(k)) is not None}
        if not self.distributions:
            raise ValueError("the base train.py has no tunable constants for TPE")
        self.seed = seed
        self.study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
        self._pending: dict[int, optuna.trial.Trial] = {}

    def propose(self, state: SearchState) -> Proposal:
        # a sampler seeded by (seed, iteration): the study is rebuilt from the ledger on resume, and the
        # next proposal is then the one an uninterrupted campaign would have made
        self.study.sampler = optuna.samplers.TPESampler(seed=self.seed * 1_000_003 + state.iteration)
        trial = self.study.ask(self.distributions)
        self._pending[trial.number] = trial
        return Proposal(operator="config", arg="", kind="config", info={"trial": trial.number}, params=dict(trial.params))

    def observe(self, transition: Transition) -> None:
        value = transition.val_bpb if transition.status.scored else None
        trial = self._pending.pop(transition.info.get("trial", -1), None)
        if trial is not None:
            if value is None:
                self.study.tell(trial, state=TrialState.FAIL)
            else:
                self.study.tell(trial, value)
            return
        if transition.params is None:
            return  # not one of ours (e.g. a campaign that switched proposers): nothing to learn in this view
        params = {k: v for k, v in transition.params.items() if k in self.distributions}
        self.study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: self.distributions[k] for k in params},
            value=value, state=TrialState.COMPLETE if value is not None else TrialState.FAIL))
