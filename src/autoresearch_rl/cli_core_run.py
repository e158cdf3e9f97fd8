"""`arl run` on the core loop: the search agents of the simulated benchmarks, on the real runner.

The campaign is `real_campaign.py` (the `Loop` of the in-memory campaigns, with `BackendWorkers` that
train), its events in `events.sqlite`, and the ledger a projection of them (`ledger/projection.py`),
so `arl status`, `report` and `verify` read it as before. What `arl run` adds here is the user's
settings (keep rule, budgets, early abort, audit, backend), the live display, and Ctrl-C: in-flight
runs are recorded as interrupted, nothing else is lost, and the same command resumes.

Campaigns of autoresearch-rl 0.1 (the per-edit loop: a ledger of runs and no event log) are refused
with one line naming the version that made them: their rows are not events and would be misread.
"""

from __future__ import annotations

from typing import Any

from autoresearch_rl import __version__
from autoresearch_rl.agent.search.registry import SEARCH_AGENTS
from autoresearch_rl.backends.base import Backend
from autoresearch_rl.campaign import Campaign
from autoresearch_rl.core.decider import NoiseAwareDecider
from autoresearch_rl.core.events import Aborted, Crashed, Decided, Event, Proposed, Scored
from autoresearch_rl.core.pruner import CurvePruner
from autoresearch_rl.core.state import CampaignState
from autoresearch_rl.errors import UserError
from autoresearch_rl.ledger import ExperimentRow
from autoresearch_rl.ledger.event_store import EVENTS_NAME
from autoresearch_rl.ledger.projection import log_rows
from autoresearch_rl.loop_config import LoopConfig
from autoresearch_rl.real_campaign import real_campaign

AGENTS = SEARCH_AGENTS  # the agents of the simulated benchmarks, each over the train.py's configurations
LEARNERS = ("ppo", "ppo_meta", "ppo_prior")  # audited against random configurations when asked
RETIRED_AGENTS = {"ppo_edits": "the per-action learner over code edits was retired in autoresearch-rl 0.2 (it learned "
                               "nothing within one campaign); use --agent ppo, meta-trained across campaigns"}
DEFAULT_HORIZON = 300  # the agent's planning horizon when no --max-iters is given (the reference campaign)
OWN_ROLES = ("baseline", "verification")  # rows `arl baseline` and `arl verify` add to any campaign


def refuse_earlier_campaigns(campaign: Campaign) -> None:
    """A campaign the per-edit loop of autoresearch-rl 0.1 ran has rows and no event log: refuse it by name."""
    meta = campaign.ledger.meta()
    if (campaign.run_dir / EVENTS_NAME).is_file() or meta.get("loop") == "core":
        return
    if any(r.role not in OWN_ROLES for r in campaign.ledger.experiments()):
        made_by = meta.get("package_version", "0.1")
        raise UserError(f"campaign {campaign.run_dir} was run by autoresearch-rl {made_by}'s per-edit loop, which "
                        f"this version {__version__} no longer runs; read it with `arl status`/`report`, or start a "
                        "new run directory")


class DisplayEvents:
    """The live display (`display.py`) fed from the events, after the projection has written their rows."""

    def __init__(self, campaign: Campaign, display: Any) -> None:
        self.ledger = campaign.ledger
        self.display = display
        self._rows: dict[int, int] = {}  # experiment of the log -> ledger row

    def _row(self, exp: int) -> ExperimentRow:
        if exp not in self._rows:
            self._rows = log_rows(self.ledger)
        return self.ledger.get(self._rows[exp])

    def on_event(self, event: Event, state: CampaignState) -> None:
        if isinstance(event, Proposed):
            row = self._row(event.exp)
            self.display.experiment_started(row.id, row.role, row.description)
        elif isinstance(event, (Scored, Crashed, Aborted)) and state.experiments[event.exp].kind != "edit":
            row = self._row(event.exp)
            self.display.experiment_finished(row, row.role)
        elif isinstance(event, Decided) and event.verdict not in ("confirm", "deferred", "measured"):
            row = self._row(event.exp)
            self.display.experiment_finished(row, row.status.value)


def run_core(campaign: Campaign, agent: str, config: LoopConfig, base: str, backend: Backend, device: str | None,
             display: Any) -> tuple[str, str]:
    """Run (or resume) the campaign until its stopper fires; returns the stop (rule, reason)."""
    pruner = (CurvePruner(campaign.preset.time_budget_s, config.abort, config.keep)
              if config.abort is not None and config.abort.enabled else None)
    try:
        loop = real_campaign(base, agent, config.seed, config.oracle.max_iters or DEFAULT_HORIZON, backend,
                             ledger=campaign, device=device, validate=config.smoke_check,
                             calibration_runs=config.noise.calibration_seeds, oracle=config.oracle, pruner=pruner,
                             decider=NoiseAwareDecider(config.keep, config.reward),
                             audit_fraction=config.audit_fraction if agent in LEARNERS else 0.0,
                             listeners=(DisplayEvents(campaign, display).on_event,))
    except ValueError as exc:  # e.g. a file with no searchable constant
        raise UserError(f"--agent {agent}: {exc}") from exc
    campaign.ledger.set_meta(stop_reason=None, stop_rule=None)
    campaign.recover()  # runs a killed controller left RUNNING: INTERRUPTED until the loop runs them again
    try:
        with display:
            state = loop.run()
    except KeyboardInterrupt:
        backend.shutdown(cancel=True)
        campaign.ledger.mark_interrupted("the controller was stopped while it ran; it is re-run on resume")
        campaign.ledger.set_meta(stop_rule="user_interrupt", stop_reason=(
            f"user_interrupt: stopped by the user after {loop.state.iterations} iterations; the campaign can be "
            "resumed"))
        raise
    finally:
        backend.shutdown()
        loop.c.store.close()  # type: ignore[attr-defined]
    assert state.stopped is not None
    return state.stopped.rule, state.stopped.reason
