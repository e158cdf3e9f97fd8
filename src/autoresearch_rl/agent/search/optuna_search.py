"""Optuna's samplers as search agents: TPE (every knob categorical) and CMA-ES (knobs as ordered integer indices).

Ask/tell: `propose` asks the study for a trial, `observe` tells it the edit's outcome (the mean of its
runs; a crash is a failed trial). On resume the decided edits are added back as finished trials.
CMA-ES starts at the campaign's start configuration. Duplicate suggestions are run like any
proposal (they are re-measurements of that configuration).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from autoresearch_rl.core.proposer import Proposal
from autoresearch_rl.core.space import Config, DiscreteSpace
from autoresearch_rl.core.state import CampaignState, Experiment


class OptunaSearch:
    def __init__(self, space: DiscreteSpace, seed: int = 0, sampler: str = "tpe") -> None:
        import optuna

        optuna.logging.set_verbosity(logging.WARNING)
        self.space, self.seed, self.kind = space, seed, sampler
        self.name = sampler
        if sampler == "tpe":
            self.distributions: dict[str, Any] = {
                k: optuna.distributions.CategoricalDistribution(tuple(range(n))) for k, n in zip(space.knobs, space.sizes)}
        elif sampler == "cmaes":
            self.distributions = {k: optuna.distributions.IntDistribution(0, max(1, n - 1))
                                  for k, n in zip(space.knobs, space.sizes)}
        else:
            raise ValueError(f"unknown optuna sampler {sampler!r}")
        self._study = None
        self._pending: dict[int, Any] = {}  # exp id -> trial asked for it
        self._told: set[int] = set()

    def _ensure_study(self, state: CampaignState):
        if self._study is None:
            import optuna

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if self.kind == "tpe":
                    sampler = optuna.samplers.TPESampler(seed=self.seed)
                else:
                    x0 = {k: int(i) for k, i in zip(self.space.knobs, state.start)}
                    sampler = optuna.samplers.CmaEsSampler(x0=x0, seed=self.seed, warn_independent_sampling=False)
                self._study = optuna.create_study(sampler=sampler, direction="minimize")
        return self._study

    def _config(self, params: dict[str, Any]) -> Config:
        return tuple(min(max(int(params[k]), 0), n - 1) for k, n in zip(self.space.knobs, self.space.sizes))

    def propose(self, state: CampaignState) -> Proposal:
        study = self._ensure_study(state)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = study.ask(self.distributions)
        exp = len(state.experiments)
        self._pending[exp] = trial
        return Proposal(self._config(trial.params), info={"trial": trial.number})

    def observe(self, state: CampaignState, experiment: Experiment) -> None:
        import optuna

        if experiment.kind != "edit" or experiment.exp in self._told:
            return
        self._told.add(experiment.exp)
        study = self._ensure_study(state)
        runs = state.runs_of(experiment.exp)
        value = sum(runs) / len(runs) if runs and not experiment.failed else None
        trial = self._pending.pop(experiment.exp, None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if trial is not None:
                if value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(trial, value)
                return
            params = {k: int(i) for k, i in zip(self.space.knobs, experiment.config)}  # a replay after resume
            study.add_trial(optuna.trial.create_trial(
                params=params, distributions=self.distributions, value=value,
                state=optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL))
