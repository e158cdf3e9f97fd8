"""The ledger as a projection of a core campaign's events: what `arl status`, `report` and `verify` read.

The events (core/events.py, `events.sqlite`) are the campaign. The ledger's tables (experiments, their
decisions, the campaign facts), `results.tsv` and the git history of every run's train.py are views
the CLI and the report read. `LedgerProjection.on_event` writes each event's consequences there, after
the event is durable; it never decides anything. Every write is idempotent and the count of projected
events is recorded after it, so a controller killed between an event and its projection catches up
when the campaign is reopened (`catch_up`): the ledger is a function of the log.

Each row names its experiment of the log (`core_exp` in its proposal): other rows may come between
(`arl verify` records its runs in the same ledger) and the campaign still goes on.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from typing import Any

from autoresearch_rl import faults
from autoresearch_rl.backends.workers import training_seed
from autoresearch_rl.campaign import Campaign, source_hash
from autoresearch_rl.core.events import (Aborted, Calibrated, CampaignStarted, Crashed, Decided, Event, PolicyUpdated,
                                         Proposed, Resumed, Scored, Stopped)
from autoresearch_rl.core.space import Config, DiscreteSpace
from autoresearch_rl.core.state import CampaignState
from autoresearch_rl.decision import KeepRule
from autoresearch_rl.experiment import ExperimentRecord, Status
from autoresearch_rl.ledger.export import write_results_tsv
from autoresearch_rl.ledger.store import Ledger
from autoresearch_rl.loop_config import Incumbent
from autoresearch_rl.target.edits import EditError, unified_diff

ROLES = {"calibration": "calibration", "edit": "candidate", "confirm": "confirmation", "remeasure": "remeasure"}
VERDICTS = {"kept": Status.KEPT, "discarded": Status.DISCARDED}  # "failed": the run's own status, as `arl run`
PROJECTED = "projected_events"  # campaign meta: how many events of the log the ledger shows


def log_rows(ledger: Ledger) -> dict[int, int]:
    """Experiment of the log -> its ledger row (rows of `arl verify` and others have none)."""
    return {int(r.proposal["core_exp"]): r.id for r in ledger.experiments() if "core_exp" in r.proposal}


class LedgerProjection:
    def __init__(self, campaign: Campaign, space: DiscreteSpace, render: Callable[[Config], str],
                 keep: KeepRule = KeepRule()) -> None:
        self.campaign = campaign
        self.ledger = campaign.ledger
        self.history = campaign.history
        self.space = space
        self.render = render
        self.keep = keep
        meta = self.ledger.meta()
        self.projected = int(meta.get(PROJECTED, 0))
        self.rows = log_rows(self.ledger)
        self._elapsed_before = float(meta.get("elapsed_s", 0.0))
        self._opened = time.monotonic()

    def catch_up(self, events: Sequence[Event]) -> None:
        """Project the events a killed controller recorded but did not project (none, usually)."""
        if self.projected > len(events):
            raise RuntimeError(f"the ledger shows {self.projected} events, the log has {len(events)}")
        state = CampaignState()
        for i, event in enumerate(events):
            state = state.apply(event)
            if i >= self.projected:
                self.on_event(event, state)

    def on_event(self, event: Event, state: CampaignState) -> None:
        self._project(event, state)
        faults.point("projected")
        self.projected += 1
        self.ledger.set_meta(**{PROJECTED: self.projected})

    # ---- one event ---------------------------------------------------------------------------

    def _project(self, event: Event, state: CampaignState) -> None:
        if isinstance(event, CampaignStarted):
            self.ledger.set_meta(agent=event.settings.get("agent", "?"), campaign_seed=event.seed, loop="core",
                                 early_abort=bool(event.settings.get("early_abort")),
                                 audit_fraction=float(event.settings.get("audit_fraction", 0.0)))
        elif isinstance(event, Proposed):
            self._start(event, state)
        elif isinstance(event, (Scored, Crashed, Aborted)):
            self._finish(event, state)
        elif isinstance(event, Calibrated):
            first = next(e for e in state.experiments if e.kind == "calibration" and e.outcome == "scored")
            sha = self.ledger.get(self.rows[first.exp]).commit_sha
            scores = [e.value for e in state.experiments if e.kind == "calibration" and e.outcome == "scored"]
            self.ledger.set_meta(base_commit=sha, noise_sigma=event.sigma, calibration_scores=scores,
                                 baseline_mean=event.baseline, keep_margin=self._margin(event.sigma),
                                 calibration_disturbed=[], incumbent=self._incumbent(state))
            self.history.keep(sha)
            self._drop_checkpoints([e.exp for e in state.experiments if e.kind == "calibration"], state)
        elif isinstance(event, Decided):
            self._decide(event, state)
        elif isinstance(event, PolicyUpdated):
            self.ledger.set_meta(agent_updates=event.version)
        elif isinstance(event, Stopped):
            self.ledger.set_meta(stop_reason=event.reason, stop_rule=event.rule, elapsed_s=self.elapsed_s())
        elif isinstance(event, Resumed):
            self.ledger.set_meta(stop_reason=None, stop_rule=None)

    def _start(self, event: Proposed, state: CampaignState) -> None:
        exp = event.exp
        source: str | None = None
        if exp not in self.rows:
            parent = state.experiments[event.parent] if event.parent is not None else None
            try:
                source = self.render(event.config)
            except EditError as exc:
                source = ""
                description = f"not written: {exc}"
            else:
                description = self._describe(event, parent.config if parent is not None else state.start)
            diff = ""
            if event.kind == "edit" and source:  # only an edit shows what it changed
                diff = unified_diff(self.render(parent.config) if parent is not None else "", source)
            proposal = {"core_exp": exp, "operator": "config", "arg": "", "kind": event.kind, "info": event.info,
                        "params": self.space.values(event.config), "config": list(event.config),
                        "iteration": state.iterations, "incumbent_val_bpb": state.experiments[exp].incumbent_value,
                        **({"audit": True} if event.info.get("audit") else {})}
            self.rows[exp] = self.ledger.start_experiment(
                role=ROLES[event.kind], source_hash=source_hash(source), description=description, diff=diff,
                parent_id=self.rows[event.parent] if event.parent is not None else None,
                seed=training_seed(state.measurement_seed(exp)), proposal=proposal,
                workspace=str(self.campaign.workspace(exp)))
            faults.point("row_started")
        rid = self.rows[exp]
        if not self.ledger.get(rid).commit_sha:
            sha = self.history.experiment_commit(rid)
            if sha is None:
                sha = self.history.record(self._source(event.config) if source is None else source,
                                          self.ledger.get(rid).description, parent=self.history.incumbent(),
                                          exp_id=rid)
                faults.point("row_committed")
            self.ledger.set_commit(rid, sha)

    def _source(self, config: Config) -> str:
        try:
            return self.render(config)
        except EditError:
            return ""

    def _describe(self, event: Proposed, parent: Config) -> str:
        if event.kind == "calibration":
            return "calibration: base train.py"
        if event.kind == "confirm":
            return f"confirmation of experiment {self.rows[event.parent or 0]}"
        if event.kind == "remeasure":
            return f"re-measure incumbent ({event.info.get('why', 'drift')})"
        before, after = self.space.values(parent), self.space.values(event.config)
        changes = [f"{k} {before[k]!r} -> {after[k]!r}" for k in self.space.knobs if before[k] != after[k]]
        return ", ".join(changes) or "the incumbent again"

    def _finish(self, event: Scored | Crashed | Aborted, state: CampaignState) -> None:
        if "status" in event.details:  # the run's whole record (a real run)
            record = ExperimentRecord.from_json(event.details)
        elif isinstance(event, Scored):
            record = ExperimentRecord(Status.OK, val_bpb=event.value)
        elif isinstance(event, Aborted):
            record = ExperimentRecord(Status.ABORTED, error=event.reason)
        else:  # a lost worker, or a landscape's crash: no record but the reason
            record = ExperimentRecord(Status.CRASHED, error=event.reason)
        self.ledger.finish_experiment(self.rows[event.exp], record)
        faults.point("row_finished")
        seeds = self.ledger.meta().get("seeds", [])
        seed = self.ledger.get(self.rows[event.exp]).seed
        if seed not in seeds:
            self.ledger.set_meta(seeds=sorted([*seeds, seed]))
        if state.calibrated:  # a repeated run sharpens sigma; a re-measurement moves the incumbent's mean
            sigma = state.sigma or 0.0
            self.ledger.set_meta(incumbent=self._incumbent(state), noise_sigma=sigma, keep_margin=self._margin(sigma),
                                 elapsed_s=self.elapsed_s())
        write_results_tsv(self.ledger, self.campaign.run_dir / "results.tsv")
        self._drop_checkpoints([event.exp], state)

    def _decide(self, event: Decided, state: CampaignState) -> None:
        row = self.ledger.get(self.rows[event.exp])
        status = row.status if event.verdict == "failed" else VERDICTS.get(event.verdict)
        if status is None:
            return  # a confirmation, deferral or re-measurement: no verdict yet
        if row.reward is None:  # else recorded before a kill; its files follow (idempotent)
            self.ledger.decide(self.rows[event.exp], status, event.reward, incumbent=self._incumbent(state),
                               elapsed_s=self.elapsed_s())
            faults.point("row_decided")
        if status is Status.KEPT:
            self.history.keep(row.commit_sha)
        write_results_tsv(self.ledger, self.campaign.run_dir / "results.tsv")
        replaced = ([e.exp for e in state.experiments if e.verdict == "kept" or e.kind == "calibration"]
                    if event.verdict == "kept" else [])  # the incumbent it replaced (kept before, or calibration)
        self._drop_checkpoints([event.exp, *replaced], state)

    def _drop_checkpoints(self, exps: Sequence[int], state: CampaignState) -> None:
        """Checkpoints are large on GPU presets: keep only the base run's and the incumbent's (the report's
        held-out test scores them) and an undecided candidate's (it may become the incumbent). Idempotent."""
        base = next((c.exp for c in state.experiments if c.kind == "calibration" and c.outcome == "scored"), None)
        for exp in exps:
            e = state.experiments[exp]
            if exp in (state.incumbent_exp, base) or e.outcome == "pending":
                continue
            if e.kind == "edit" and e.verdict in (None, "confirm", "deferred"):
                continue
            shutil.rmtree(self.campaign.workspace(exp) / "checkpoint", ignore_errors=True)

    # ---- campaign facts ----------------------------------------------------------------------

    def _incumbent(self, state: CampaignState) -> dict[str, Any]:
        assert state.incumbent_exp is not None and state.incumbent_value is not None
        row = self.ledger.get(self.rows[state.incumbent_exp])
        return Incumbent(row.id, row.commit_sha, state.incumbent_value, row.source_hash).to_json()

    def _margin(self, sigma: float) -> float:
        return 0.0 if self.keep.strict else self.keep.margin_sigmas * sigma

    def elapsed_s(self) -> float:
        """Wall seconds of the campaign over all its sessions (the oracle's --max-hours)."""
        return self._elapsed_before + time.monotonic() - self._opened
