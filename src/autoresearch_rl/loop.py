"""The controller: calibrate, then propose -> materialise -> run -> evaluate -> decide -> record -> learn, until told to stop.

Every fact the loop acts on is in the ledger, so a controller killed at any instant resumes by
reading it back: experiments left RUNNING become INTERRUPTED and are re-run with the same proposal,
a candidate that ran but was not decided is decided now (the decision is a pure function of its
rows), the incumbent in git is reconciled with the ledger's, and the proposer is restored from its
last checkpoint plus the transitions recorded after it.

Experiments run through a backend (`backends/`): inline (one at a time, in this thread), N local
slots, or Ray tasks. The loop is a scheduler: while a slot is free it starts the most urgent job
(a calibration run, a confirmation, the re-run of an interrupted candidate, else a new proposal),
then handles results as they arrive. With one slot this is exactly the synchronous loop. With N,
the agent proposes while others run; each proposal records the policy version and log-probability
it was sampled with, so PPO's importance ratio is against the policy that really acted.

Keep rule under concurrency: a candidate is *rewarded* against the incumbent it was derived from
(what its edit did), and *kept* only if it beats the *current* incumbent by the margin (so the
incumbent's score only ever improves, whatever order results arrive in).

What the loop only orchestrates lives beside it: `campaign_view.py` (pure reads of the ledger),
`keep_decision.py` (the verdict on a finished candidate), `experiment_plan.py` (what each kind of
experiment runs, with which seed), `materialise.py` (a proposal becomes the train.py that runs),
`agent/checkpoint.py` (the proposer's memory), `selfeval/` (early abort, audit, drift). The
proposer learns in an explicit step: `update(state)` when `ready()`, before a proposal.

Roles in the ledger: `calibration` (the unmodified base train.py with distinct seeds: the noise
sigma and the starting incumbent), `candidate` (one iteration: one proposal), `confirmation` (a
re-run of a candidate's train.py with another seed, when its apparent win was small), `remeasure`
(a re-run of the incumbent: paired with a candidate whose throughput says the machine changed, or
periodic; see selfeval/drift.py).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from autoresearch_rl import campaign_view as view
from autoresearch_rl import faults
from autoresearch_rl.agent.baselines import RandomProposer
from autoresearch_rl.agent.checkpoint import ProposerMemory
from autoresearch_rl.agent.protocol import Learner, Proposer, SearchState, Transition
from autoresearch_rl.backends.base import Backend, JobResult, JobSpec
from autoresearch_rl.backends.local import InlineBackend
from autoresearch_rl.campaign import Campaign
from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import ExperimentRecord, Status
from autoresearch_rl.keep_decision import judge_candidate
from autoresearch_rl.experiment_plan import ExperimentPlanner, Start
from autoresearch_rl.materialise import Materialiser
from autoresearch_rl.ledger import ExperimentRow
from autoresearch_rl.loop_config import (Incumbent, LoopConfig, LoopEvents, _SilentEvents, derive_seed,  # noqa: F401
                                        resolve_base_source)
from autoresearch_rl.selfeval.audit import AuditSummary, audit, is_audit
from autoresearch_rl.selfeval.drift import periodic_remeasure_due
from autoresearch_rl.oracle import CampaignProgress, StopDecision, TerminationOracle, user_interrupt
from autoresearch_rl.target.space import ActionSpace

log = logging.getLogger(__name__)

AGENT_DIR = "agent"  # the meta-learner's own place in the run directory
CHECKPOINT_NAME = "checkpoint.pt"
STOP_FILE = "STOP"
MAX_WORKER_LOSSES = 3  # a candidate whose worker died this often is abandoned (it may be what kills them)
WAIT_POLL_S = 1.0  # how often a waiting controller looks at the STOP file and the clock


class ResearchLoop:
    """Runs one campaign with one proposer until the termination oracle (or the user) stops it."""

    def __init__(self, campaign: Campaign, proposer: Proposer, config: LoopConfig = LoopConfig(),
                 events: LoopEvents | None = None, base_source: str | None = None,
                 backend: Backend | None = None, device: str | None = None) -> None:
        self.campaign = campaign
        self.device = device  # where candidates train: knobs declared for other devices are masked
        self.ledger = campaign.ledger
        self.history = campaign.history
        self.proposer = proposer
        self.config = config
        self.events = events or _SilentEvents()
        self.backend: Backend = backend or InlineBackend(campaign.get_executor())
        self.oracle = TerminationOracle.from_config(config.oracle, stop_file=campaign.run_dir / STOP_FILE)
        self._requested_base = base_source
        self._session_started = time.time()
        self._elapsed_before = 0.0
        self.memory = ProposerMemory(proposer, campaign.run_dir / AGENT_DIR / CHECKPOINT_NAME)
        self.base_source = ""
        self.space: ActionSpace | None = None
        self.planner: ExperimentPlanner | None = None
        self._jobs: dict[int, _Job] = {}  # experiments in flight, by id
        self._confirm: deque[int] = deque()  # candidates waiting for a confirmation run
        self._retry: deque[int] = deque()  # interrupted candidates waiting to be re-run
        self._remeasure: deque[int] = deque()  # candidates waiting for a paired re-run of the incumbent
        self._calibration_attempts = 0
        self._auditor = RandomProposer(seed=derive_seed(config.seed, "audit"))
        self.audit_fraction = config.audit_fraction

    # ---- paths and small facts ---------------------------------------------------------------

    def elapsed_s(self) -> float:
        return self._elapsed_before + (time.time() - self._session_started)

    @property
    def calibrated(self) -> bool:
        return self.space is not None and "noise_sigma" in self.ledger.meta()

    # ---- the loop ----------------------------------------------------------------------------

    def run(self) -> StopDecision:
        """Calibrate if needed, resume what was left, then schedule experiments until a stop rule fires or Ctrl-C."""
        meta = self.ledger.meta()
        self._elapsed_before = float(meta.get("elapsed_s", 0.0))
        self._check_agent(meta)
        aborting = self.config.abort is not None and self.config.abort.enabled
        self.ledger.set_meta(stop_reason=None, stop_rule=None, early_abort=bool(meta.get("early_abort")) or aborting)
        try:
            if n := self.campaign.recover():
                log.warning("marked %d experiment(s) left running by a stopped controller as INTERRUPTED", n)
            self._load_base()
            if self.calibrated:
                self._resume()
            else:
                self._after_calibration_run()  # runs a killed controller finished but did not account for
            decision = self._schedule()
        except KeyboardInterrupt:
            self._abandon_in_flight("the controller was stopped while it ran; it was not scored")
            decision = user_interrupt(self.progress())
            self._record_stop(decision)
            raise
        except BaseException:
            self._abandon_in_flight("the controller failed while it ran; it was not scored")
            raise
        finally:
            self.backend.shutdown()
        self._record_stop(decision)
        return decision

    def _abandon_in_flight(self, reason: str) -> None:
        self.backend.shutdown(cancel=True)
        self.ledger.mark_interrupted(reason)
        self._jobs.clear()

    def _schedule(self) -> StopDecision:
        """Fill free slots with the most urgent jobs; handle results as they come; stop when told and drained."""
        stopping: StopDecision | None = None
        while True:
            while self.backend.free_slots() > 0:
                if stopping is None and self.calibrated and not self._confirm and not self._retry:
                    # asked before every new job, not once per pass: two slots freed by one result (or by a
                    # candidate answered from the ledger) must not start two proposals past max_iters
                    stopping = self.oracle.check(self.progress())
                    if stopping is not None and self._jobs:
                        log.info("stopping (%s); waiting for %d experiment(s) in flight", stopping.reason,
                                 len(self._jobs))
                spec = self._next_job(allow_new=stopping is None)
                if spec is None:
                    break
                self.backend.submit(spec)
            if not self._jobs:
                if stopping is not None:
                    return stopping
                if self.calibrated and not self._confirm and not self._retry:
                    continue  # nothing running and nothing queued: the next pass asks the oracle again
                raise RuntimeError("the scheduler has nothing to run and nothing running")  # a bug, not a user error
            for result in self.backend.wait(timeout=WAIT_POLL_S):
                self._on_result(result)

    def _next_job(self, allow_new: bool) -> JobSpec | None:
        """The most urgent job: calibration, then confirmations, then re-runs, then (if allowed) a new proposal."""
        if not self.calibrated:
            return self._calibration_job()
        while self._confirm:
            spec = self._confirmation_job(self._confirm.popleft())
            if spec is not None:
                return spec
        if self._remeasure:
            return self._remeasure_job(self._remeasure.popleft(), "paired with a candidate whose throughput moved")
        if self._retry:
            return self._retry_job(self._retry.popleft())
        if allow_new and self._periodic_remeasure_due():
            return self._remeasure_job(self.incumbent().exp_id, "periodic")
        if allow_new:
            return self._proposal_job()
        return None

    def _start(self, start: Start) -> JobSpec:
        spec = self.campaign.start(start.source, role=start.role, description=start.description, **start.kwargs())
        self._jobs[spec.exp_id] = _Job(role=start.role, proposal=start.proposal)
        self.events.experiment_started(spec.exp_id, start.role, start.description)
        return spec

    def _on_result(self, result: JobResult) -> None:
        """Record a finished job, then act on it according to its role."""
        exp_id = result.spec.exp_id
        job = self._jobs.pop(exp_id)
        if result.record is None:  # the worker died (killed process, lost node): the experiment is re-run
            log.warning("experiment %d: worker %s lost (%s); it will be re-run", exp_id, result.worker, result.lost)
            self.ledger.finish_experiment(exp_id, ExperimentRecord(status=Status.INTERRUPTED, seed=result.spec.seed,
                                                                   error=f"worker lost: {result.lost}"))
            if job.role == "candidate" and view.worker_losses(self.ledger.experiments(), exp_id) < MAX_WORKER_LOSSES:
                self._retry.append(exp_id)
            elif job.role in ("confirmation", "remeasure"):
                self._decide(self.ledger.get(exp_id).parent_id or 0)
            return
        record = result.annotated_record()
        faults.point("experiment_ran")
        self.campaign.finish(result.spec, record, role=job.role, keep_checkpoint=True)
        if job.role == "calibration":
            self.events.experiment_finished(self.ledger.get(exp_id), job.role)
            self._after_calibration_run()
        elif job.role in ("confirmation", "remeasure"):
            self.events.experiment_finished(self.ledger.get(exp_id), job.role)
            parent = self.ledger.get(exp_id).parent_id
            if parent is not None and self.ledger.get(parent).role == "candidate":
                self._decide(parent)
        else:
            self._decide(exp_id)

    def _check_agent(self, meta: dict[str, Any]) -> None:
        recorded = meta.get("agent")
        self.audit_fraction = float(meta.get("audit_fraction", self.config.audit_fraction))  # fixed at the start
        if recorded is None:
            self.ledger.set_meta(agent=self.proposer.name, campaign_seed=self.config.seed,
                                 audit_fraction=self.audit_fraction)
        elif recorded != self.proposer.name:
            raise UserError(f"campaign {self.campaign.run_dir} was run by agent {recorded!r}, not {self.proposer.name!r}; "
                            f"pass --agent {recorded} to resume it or use another --run-dir")

    def _record_stop(self, decision: StopDecision) -> None:
        self.ledger.set_meta(stop_reason=decision.reason, stop_rule=decision.rule, stop_details=decision.details,
                             elapsed_s=self.elapsed_s())
        self._save_checkpoint(force=True)

    # ---- calibration -------------------------------------------------------------------------

    def _load_base(self) -> None:
        """The campaign's base train.py and action space (fails early on a bad # search: annotation)."""
        meta = self.ledger.meta()
        if "noise_sigma" in meta:
            self.base_source = self.history.source_at(meta["base_commit"])
        else:
            self.base_source = resolve_base_source(self.campaign, self._requested_base)
        self.space = ActionSpace.for_source(self.base_source, device=self.device)
        self.planner = ExperimentPlanner(self.config, self.history, Materialiser(self.history, self.space, self.base_source),
                                         self.campaign.preset.time_budget_s)

    def _calibration_job(self) -> JobSpec | None:
        assert self.planner is not None
        start = self.planner.calibration(self.ledger.experiments(), self._calibration_attempts)
        if start is None:
            return None
        self._calibration_attempts += 1
        return self._start(start)

    def _after_calibration_run(self) -> None:
        """When `calibration_seeds` runs are scored: their spread is the noise sigma, their mean the first incumbent."""
        rows = self.ledger.experiments()
        facts = view.calibration_facts(rows, self.config.noise.calibration_seeds, self.config.noise, self.config.keep)
        if facts is None:
            return  # more runs to come (or, if too many failed, the next _calibration_job says so)
        self.ledger.set_meta(**facts)
        first = facts["incumbent"]["exp_id"]
        for r in rows:
            if r.role == "calibration" and r.id != first:
                self.campaign.drop_checkpoint_unless_incumbent(r.id)
        log.info("calibrated: baseline %.4f, sigma %.4f over %d seeds", facts["baseline_mean"], facts["noise_sigma"],
                 len(facts["calibration_scores"]))
        self._resume()

    def _resume(self) -> None:
        """After calibration (now or in an earlier session): repair git, restore the agent, queue what was left."""
        self._reconcile_incumbent()
        self._restore_proposer()
        self._resume_pending()

    # ---- incumbent -----------------------------------------------------------------------------

    def incumbent(self) -> Incumbent:
        return view.incumbent_of(self.ledger.meta())

    def _reconcile_incumbent(self) -> None:
        """Git follows the ledger: a kill between the keep decision and the branch update is repaired here."""
        sha = self.incumbent().sha
        current = self.history.incumbent()
        if current != sha:
            if current is not None and current not in self._calibration_commits():
                log.warning("moving the research branch to the ledger's incumbent %s", sha[:7])
            self.history.keep(sha)

    def _calibration_commits(self) -> set[str]:
        return {r.commit_sha for r in self.ledger.experiments() if r.role in ("calibration", "baseline")}

    # ---- state for the proposer ------------------------------------------------------------------

    def transitions(self, rows: list[ExperimentRow] | None = None) -> list[Transition]:
        rows = self.ledger.experiments() if rows is None else rows
        return view.transitions(rows, self.config.reward.failure_penalty)

    def state(self) -> SearchState:
        assert self.space is not None
        inc = self.incumbent()
        source = self.history.source_at(inc.sha)
        meta = self.ledger.meta()
        rows = self.ledger.experiments()
        history = tuple(self.transitions(rows))
        used = view.budget_used(self.config.oracle, len(history), self.elapsed_s(), view.device_hours(rows))
        return SearchState(incumbent_source=source, incumbent_hash=inc.source_hash, incumbent_val_bpb=inc.val_bpb,
                           base_source=self.base_source, space=self.space, mask=self._mask(source, inc.source_hash),
                           history=history, noise_sigma=float(meta["noise_sigma"]), budget_used=used,
                           proposal_index=view.proposals_made(rows))

    def _mask(self, source: str, incumbent_hash: str) -> tuple[bool, ...]:
        assert self.space is not None
        in_flight = [job.proposal for job in self._jobs.values() if job.role == "candidate" and job.proposal]
        return view.mask_without_running(self.space, source, incumbent_hash, in_flight)

    def progress(self) -> CampaignProgress:
        rows = self.ledger.experiments()
        history = self.transitions(rows)
        margin = float(self.ledger.meta().get("keep_margin", 0.0))
        return CampaignProgress(iterations=max(len(history), view.proposals_made(rows)),  # decided or in flight
                                elapsed_hours=self.elapsed_s() / 3600, device_hours=view.device_hours(rows),
                                improvement_iterations=view.improvement_iterations(history, margin),
                                entropy_ratio=getattr(self.proposer, "last_entropy_ratio", None),
                                entropy_floor_ratio=getattr(self.proposer, "entropy_floor_ratio", None),
                                audit=self.audit_summary(rows))

    # ---- the proposer's memory -------------------------------------------------------------------

    def _restore_proposer(self) -> None:
        if replayed := self.memory.restore(self.transitions()):
            log.info("replayed %d transition(s) into the %s agent", replayed, self.proposer.name)

    def _save_checkpoint(self, force: bool = False) -> None:
        """After each update (and at a stop): the learner plus how far into the ledger it has seen."""
        if self.memory.save(force):
            self.ledger.set_meta(agent_updates=self.proposer.updates)  # type: ignore[attr-defined]

    # ---- the self-audit ----------------------------------------------------------------------------

    def _audits(self) -> bool:
        """Only a learning agent is audited (random search audited against itself would be waste)."""
        return self.audit_fraction > 0 and isinstance(self.proposer, Learner)

    def audit_summary(self, rows: list[ExperimentRow] | None = None) -> AuditSummary | None:
        """The agent's improvement rate against the interleaved random proposals', on this campaign."""
        if not self._audits():
            return None
        rows = self.ledger.experiments() if rows is None else rows
        return audit(rows, float(self.ledger.meta().get("keep_margin", 0.0)))

    # ---- jobs ------------------------------------------------------------------------------------

    def _proposal_job(self) -> JobSpec:
        """Ask the proposer for the next candidate and start it."""
        state = self.state()
        if isinstance(self.proposer, Learner) and self.proposer.ready():
            self.proposer.update(state)  # the rollout is full: learn, bootstrapped from the state it ends in
        audited = self._audits() and is_audit(self.config.seed, state.iteration, self.audit_fraction)
        proposal = (self._auditor if audited else self.proposer).propose(state)
        faults.point("proposed")
        self._save_checkpoint()
        payload = {"operator": proposal.operator, "arg": proposal.arg, "kind": proposal.kind, "info": proposal.info,
                   "params": proposal.params, "parent_hash": state.incumbent_hash,
                   "incumbent_val_bpb": state.incumbent_val_bpb, "iteration": state.iteration}
        if audited:
            payload["audit"] = True
        inc = self.incumbent()
        return self._candidate_job(state.incumbent_source, inc.exp_id, payload, retry_of=None)

    def _retry_job(self, interrupted_id: int) -> JobSpec:
        """The same proposal against the same parent, with the same seed: the run that was interrupted."""
        assert self.planner is not None
        row, rows = self.ledger.get(interrupted_id), self.ledger.experiments()
        log.warning("re-running experiment %d, interrupted before it was scored", row.id)
        return self._candidate_job(self.planner.parent_source(row, rows), row.parent_id, row.proposal, retry_of=row.id)

    def _candidate_job(self, parent_source: str, parent_id: int | None, payload: dict[str, Any],
                       retry_of: int | None) -> JobSpec:
        assert self.planner is not None
        return self._start(self.planner.candidate(parent_source, parent_id, payload, self.ledger.experiments(),
                                                  self.incumbent(), float(self.ledger.meta()["keep_margin"]),
                                                  retry_of=retry_of))

    def _confirmation_job(self, exp_id: int) -> JobSpec | None:
        assert self.planner is not None
        start = self.planner.confirmation(self.ledger.get(exp_id))
        return None if start is None else self._start(start)

    # ---- decisions -------------------------------------------------------------------------------

    def _decide(self, exp_id: int) -> None:
        """Keep, discard or queue the evidence a finished candidate owes; record the verdict; tell the proposer."""
        row, rows, inc = self.ledger.get(exp_id), self.ledger.experiments(), self.incumbent()
        verdict = judge_candidate(row, rows, inc, float(self.ledger.meta()["noise_sigma"]), self.config)
        if verdict.wait == "confirm" and exp_id not in self._confirm:
            self._confirm.append(exp_id)
        elif verdict.wait == "remeasure" and exp_id not in self._remeasure:
            log.warning("experiment %d trained at %+.0f%% of the machine's speed: re-measuring the incumbent before "
                        "deciding", exp_id, 100 * verdict.throughput_change)
            self._remeasure.append(exp_id)
        if verdict.status is None:
            return
        meta: dict[str, Any] = {"elapsed_s": self.elapsed_s()}
        if verdict.kept:
            assert verdict.score is not None
            meta["incumbent"] = Incumbent(exp_id, row.commit_sha, verdict.score, row.source_hash).to_json()
        self.campaign.decide(exp_id, verdict.status, verdict.reward, replaced=(inc.exp_id, inc.sha), **meta)
        transition = next(t for t in reversed(self.transitions()) if t.exp_id == exp_id)
        self.memory.observe(transition)
        self.events.experiment_finished(self.ledger.get(exp_id), verdict.status.value)

    # ---- drift (selfeval/drift.py) ----------------------------------------------------------------

    def _periodic_remeasure_due(self) -> bool:
        monitor = self.config.drift
        return monitor is not None and periodic_remeasure_due(self.ledger.experiments(), self.incumbent().source_hash,
                                                              monitor)

    def _remeasure_job(self, parent_id: int, why: str) -> JobSpec:
        assert self.planner is not None
        return self._start(self.planner.remeasure(self.incumbent(), self.ledger.experiments(), parent_id, why))

    def _resume_pending(self) -> None:
        """Decide candidates that ran but were not decided; queue re-runs of candidates that were interrupted."""
        rows = self.ledger.experiments()
        for exp_id in view.undecided_candidates(rows):
            log.warning("deciding experiment %d, which finished before the controller stopped", exp_id)
            self._decide(exp_id)
        self._retry.extend(i for i in view.interrupted_candidates(rows, MAX_WORKER_LOSSES) if i not in self._retry)


@dataclass(frozen=True)
class _Job:
    """What the controller remembers about an experiment in flight."""

    role: str
    proposal: dict[str, Any] | None = None
