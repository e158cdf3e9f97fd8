"""A train.py campaign on the core loop: the `Loop` of the simulated campaigns, with runs that train.

Nothing here is a second loop. The campaign's configurations are those of the base train.py
(`target/grid.train_py_space`: its searchable constants and the structural variants that apply);
the proposer is the search agent the benchmarks run (`agent/search`, the same object); the executor
is `backends/workers.BackendWorkers`, which writes each configuration as a train.py and trains it
on a backend (inline, local slots, Ray); the store is a `MemoryStore` or, in a run directory, the
SQLite event log (`ledger/event_store.py`), with each kept train.py committed to git from the
decision events. So a simulated campaign and a real one are the same object with other parts.

The candidate scorers (`ppo`, ...) are offered never-measured configurations only, as in `arl run`:
on a real machine each re-measurement costs a full budget, and the loop buys the evidence it needs
itself (confirmations, drift re-measurements).

A scorer draws again when its draw would not run as new code (`Runnable`: a broken `divides`
relation, variants that do not compose, a twin of a measured configuration in effect); the other
agents' configurations that cannot be written are sent as rejected: the worker records them in
seconds, without training, and the agent is told they failed.

A durable campaign records the sha256 of its base train.py; reopening it with another base file is
a one-line error (its configurations would mean other code).
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from autoresearch_rl.backends.base import Backend
from autoresearch_rl.agent.search.audited import Audited
from autoresearch_rl.backends.workers import BackendWorkers
from autoresearch_rl.campaign import Campaign as RunnerCampaign
from autoresearch_rl.core.loop import Campaign, Loop
from autoresearch_rl.core.decider import Decider, NoiseAwareDecider
from autoresearch_rl.core.events import CampaignStarted, Event
from autoresearch_rl.core.proposer import Learner, Proposer
from autoresearch_rl.core.pruner import Pruner
from autoresearch_rl.core.space import Config, DiscreteSpace
from autoresearch_rl.core.state import CampaignState
from autoresearch_rl.core.stopper import Oracle
from autoresearch_rl.core.store import MemoryStore, Store
from autoresearch_rl.errors import UserError
from autoresearch_rl.ledger.event_store import GitKeeper, SQLiteEventStore
from autoresearch_rl.ledger.projection import LedgerProjection
from autoresearch_rl.oracle.termination import OracleConfig, TerminationOracle
from autoresearch_rl.target.grid import Runnable, train_py_space
from autoresearch_rl.target.params import apply_params


STOP_FILE = "STOP"  # its existence in the run directory stops the campaign between experiments


def base_sha(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def real_campaign(base_source: str, agent: str | Callable[[DiscreteSpace], Proposer], seed: int, iters: int,
                  backend: Backend, *,
                  run_dir: Path | None = None, task: str = "train.py", device: str | None = None,
                  validate: bool = True, calibration_runs: int = 3, oracle: OracleConfig | None = None,
                  pruner: Pruner | None = None, ledger: RunnerCampaign | None = None,
                  decider: Decider | None = None, audit_fraction: float = 0.0,
                  listeners: Sequence[Callable[[Event, CampaignState], None]] = ()) -> Loop:
    """The loop of one train.py campaign, ready to `run()` (a durable one resumes where it was left).

    It stops as `oracle` says (budgets, convergence; by default after `iters` iterations, the agent's
    horizon too), or when the file STOP appears in `run_dir`. `pruner` (`core/pruner.CurvePruner`
    with the preset's budget) stops doomed candidates early, as `arl run` does; None: every run finishes.
    `agent` names a search agent (`agent/search`), or builds a proposer of your own for the file's space.
    `ledger`: the run directory opened as a `Campaign` (its ledger and git history): the events are then
    projected into its ledger (`ledger/projection.py`), so `arl status`, `report` and `verify` read the
    campaign, and every run's train.py is committed; `run_dir` is its directory. `decider` is the keep
    rule (default: 2 sigma, confirmed when close); `audit_fraction` of a learner's proposals are random
    configurations (`agent/search/audited.py`), the report's test of the agent against chance.
    `listeners` see each event after it is recorded (and projected): a display, a log."""
    from autoresearch_rl.agent.search import make_search_agent

    space, start = train_py_space(base_source, device)

    @functools.lru_cache(maxsize=512)  # a run's source is wanted by its worker, its ledger row and its children's diffs
    def render(config: Config) -> str:
        return apply_params(base_source, space.values(config))[0]

    keeper: GitKeeper | LedgerProjection | None = None
    store: Store = MemoryStore()
    if ledger is not None:
        if run_dir is not None and Path(run_dir).resolve() != ledger.run_dir:
            raise UserError(f"run_dir {run_dir} is not the ledger's directory {ledger.run_dir}")
        run_dir = ledger.run_dir
    if run_dir is not None:
        store = SQLiteEventStore(run_dir)
        recorded = store.events()[0].settings.get("base_sha256") if store.events() else None  # type: ignore[union-attr]
        if recorded is not None and recorded != base_sha(base_source):
            raise UserError(f"campaign {run_dir} searches another base train.py (sha256 {recorded[:12]}); "
                            "resume it with that file or use a new run directory")
        if ledger is not None:
            if store.events() and ledger.ledger.meta().get("loop") != "core":
                raise UserError(f"campaign {run_dir} was run without a ledger; resume it without one "
                                "(or start a new run directory)")
            rule = decider.rule if isinstance(decider, NoiseAwareDecider) else NoiseAwareDecider().rule
            keeper = LedgerProjection(ledger, space, render, keep=rule)  # the margin the ledger shows
            keeper.catch_up(store.events())  # what a killed controller recorded but did not project
        else:
            keeper = GitKeeper(run_dir, space, render=render, file_name="train.py")
    workspaces = (Path(run_dir) / "experiments" if run_dir is not None
                  else Path(tempfile.mkdtemp(prefix="arl-core-")))
    stop_file = Path(run_dir) / STOP_FILE if run_dir is not None else None
    budget = oracle or OracleConfig(max_iters=iters, improvement_probability=0.0)
    wall_hours = (lambda: keeper.elapsed_s() / 3600.0) if isinstance(keeper, LedgerProjection) else None
    stopper = Oracle(TerminationOracle.from_config(budget, stop_file=stop_file), wall_hours=wall_hours)
    proposer = make_search_agent(agent, space, seed, horizon=iters) if isinstance(agent, str) else agent(space)
    started = store.events()[0] if store.events() else None
    if isinstance(started, CampaignStarted) and started.settings.get("agent", proposer.name) != proposer.name:
        raise UserError(f"campaign {run_dir} was run by agent {started.settings['agent']!r}, not {proposer.name!r}; "
                        "resume it with that agent or use another run directory")
    if hasattr(proposer, "fresh_only"):  # the candidate scorers, as `arl run --agent ppo` runs them:
        proposer.fresh_only = True  # each run costs a budget; the loop buys the evidence it needs itself
        runnable = Runnable(base_source, space, start)
        proposer.admissible = lambda config, measured: not runnable.refusal(config, measured)
    if audit_fraction > 0 and isinstance(proposer, Learner):
        proposer = Audited(proposer, space, seed, audit_fraction)
    campaign = Campaign(task=task, seed=seed, start=start, proposer=proposer,
                        executor=BackendWorkers(backend, render, workspaces, validate=validate),
                        stopper=stopper, store=store, calibration_runs=calibration_runs, pruner=pruner,
                        decider=decider or NoiseAwareDecider(),
                        settings={"agent": proposer.name, "max_iters": iters, "base_sha256": base_sha(base_source),
                                  "knobs": list(space.knobs), "early_abort": pruner is not None,
                                  "audit_fraction": audit_fraction})
    consumers = ([keeper.on_event] if keeper is not None else []) + list(listeners)

    def on_event(event: Event, state: CampaignState) -> None:
        for consume in consumers:
            consume(event, state)

    loop = Loop(campaign, on_event=on_event if consumers else None)
    if isinstance(keeper, GitKeeper):
        keeper.reconcile(loop.state)
    return loop
