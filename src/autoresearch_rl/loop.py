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

What the loop only orchestrates lives beside it: `loop_view.py` and `campaign_view.py` (reads of
the ledger), `keep_decision.py` (the verdict on a finished candidate), `experiment_plan.py` (what each
kind of experiment runs, with which seed), `restart.py` (what a restarted controller checks and
repairs), `materialise.py` (a proposal becomes the train.py that runs), `agent/checkpoint.py` (the
proposer's memory), `selfeval/` (early abort, audit, drift). The proposer learns in an explicit
step: `update(state)` when `ready()`, before a proposal.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from autoresearch_rl import campaign_view as view
from autoresearch_rl import faults, restart
from autoresearch_rl.agent.baselines import RandomProposer
from autoresearch_rl.agent.checkpoint import ProposerMemory
from autoresearch_rl.agent.protocol import Learner, Proposer, SearchState
from autoresearch_rl.backends.base import Backend, JobResult, JobSpec
from autoresearch_rl.backends.local import InlineBackend
from autoresearch_rl.campaign import Campaign
from autoresearch_rl.experiment import ExperimentRecord, Status
from autoresearch_rl.experiment_plan import ExperimentPlanner, Start
from autoresearch_rl.keep_decision import judge_candidate
from autoresearch_rl.loop_config import (Incumbent, LoopConfig, LoopEvents, _SilentEvents, derive_seed,  # noqa: F401
                                        resolve_base_source)
from autoresearch_rl.loop_view import LoopView
from autoresearch_rl.materialise import Materialiser
from autoresearch_rl.oracle import StopDecision, TerminationOracle, user_interrupt
from autoresearch_rl.selfeval.audit import is_audit
from autoresearch_rl.selfeval.drift import periodic_remeasure_due
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
        self.view = LoopView(self.ledger, self.history, proposer, config, audit_fraction=config.audit_fraction)
        self._requested_base = base_source
        self.memory = ProposerMemory(proposer, campaign.run_dir / AGENT_DIR / CHECKPOINT_NAME)
        self.planner: ExperimentPlanner | None = None
        self._jobs: dict[int, Start] = {}  # experiments in flight, by id
        self._confirm: deque[int] = deque()  # candidates waiting for a confirmation run
        self._retry: deque[int] = deque()  # interrupted candidates waiting to be re-run
        self._remeasure: deque[int] = deque()  # candidates waiting for a paired re-run of the incumbent
        self._calibration_attempts = 0
        self._auditor = getattr(proposer, "auditor", RandomProposer)(seed=derive_seed(config.seed, "audit"))

    def state(self) -> SearchState:
        """The proposer's view (loop_view.py), with the edits in flight on this incumbent masked."""
        return self.view.state(job.proposal for job in self._jobs.values() if job.role == "candidate" and job.proposal)

    # ---- the loop ----------------------------------------------------------------------------

    def run(self) -> StopDecision:
        """Calibrate if needed, resume what was left, then schedule experiments until a stop rule fires or Ctrl-C."""
        meta = self.ledger.meta()
        self.view.elapsed_before_s = float(meta.get("elapsed_s", 0.0))
        self.view.audit_fraction = restart.claim_agent(self.ledger, self.campaign.run_dir, self.proposer.name,
                                                       self.config.seed, self.config.audit_fraction)
        aborting = self.config.abort is not None and self.config.abort.enabled
        self.ledger.set_meta(stop_reason=None, stop_rule=None, early_abort=bool(meta.get("early_abort")) or aborting)
        try:
            if n := self.campaign.recover():
                log.warning("marked %d experiment(s) left running by a stopped controller as INTERRUPTED", n)
            self._load_base()
            if self.view.calibrated:
                self._resume()
            else:
                self._after_calibration_run()  # runs a killed controller finished but did not account for
            decision = self._schedule()
        except KeyboardInterrupt:
            self._abandon_in_flight("the controller was stopped while it ran; it was not scored")
            decision = user_interrupt(self.view.progress())
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
                if stopping is None and self.view.calibrated and not self._confirm and not self._retry:
                    # asked before every new job, not once per pass: two slots freed by one result (or by a
                    # candidate answered from the ledger) must not start two proposals past max_iters
                    stopping = self.oracle.check(self.view.progress())
                    if stopping is not None and self._jobs:
                        log.info("stopping (%s); waiting for %d experiment(s) in flight", stopping.reason,
                                 len(self._jobs))
                start = self._next_job(allow_new=stopping is None)
                if start is None:
                    break
                self.backend.submit(self._start(start))
            if not self._jobs:
                if stopping is not None:
                    return stopping
                if self.view.calibrated and not self._confirm and not self._retry:
                    continue  # nothing running and nothing queued: the next pass asks the oracle again
                raise RuntimeError("the scheduler has nothing to run and nothing running")  # a bug, not a user error
            for result in self.backend.wait(timeout=WAIT_POLL_S):
                self._on_result(result)

    def _next_job(self, allow_new: bool) -> Start | None:
        """The most urgent job: calibration, confirmations, paired re-measurements, re-runs, then (if allowed) new."""
        assert self.planner is not None
        if not self.view.calibrated:
            start = self.planner.calibration(self._calibration_attempts)
            self._calibration_attempts += start is not None
            return start
        while self._confirm:
            if (start := self.planner.confirmation(self._confirm.popleft())) is not None:
                return start
        if self._remeasure:
            return self.planner.remeasure(self._remeasure.popleft(), "paired with a candidate whose throughput moved")
        if self._retry:
            log.warning("re-running experiment %d, interrupted before it was scored", self._retry[0])
            return self.planner.retry(self._retry.popleft())
        if not allow_new:
            return None
        drift = self.config.drift
        if drift is not None and periodic_remeasure_due(self.ledger.experiments(), self.view.incumbent().source_hash, drift):
            return self.planner.remeasure(self.view.incumbent().exp_id, "periodic")
        return self._proposal()

    def _start(self, start: Start) -> JobSpec:
        spec = self.campaign.start(start.source, role=start.role, description=start.description, **start.kwargs())
        self._jobs[spec.exp_id] = start
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
        if job.role != "candidate":  # a candidate's line comes with its decision
            self.events.experiment_finished(self.ledger.get(exp_id), job.role)
        if job.role == "calibration":
            self._after_calibration_run()
        elif job.role == "candidate":
            self._decide(exp_id)
        elif (parent := self.ledger.get(exp_id).parent_id) is not None and self.ledger.get(parent).role == "candidate":
            self._decide(parent)  # a confirmation or paired re-measurement: the candidate it was for

    def _record_stop(self, decision: StopDecision) -> None:
        self.ledger.set_meta(stop_reason=decision.reason, stop_rule=decision.rule, stop_details=decision.details,
                             elapsed_s=self.view.elapsed_s())
        self._save_checkpoint(force=True)

    # ---- calibration and resume ----------------------------------------------------------------

    def _load_base(self) -> None:
        """The campaign's base train.py and action space (fails early on a bad # search: annotation)."""
        meta = self.ledger.meta()
        if "noise_sigma" in meta:
            base = self.history.source_at(meta["base_commit"])
        else:
            base = resolve_base_source(self.campaign, self._requested_base)
        self.view.base_source, self.view.space = base, ActionSpace.for_source(base, device=self.device)
        self.planner = ExperimentPlanner(self.config, self.ledger, self.history,
                                         Materialiser(self.history, self.view.space, base),
                                         self.campaign.preset.time_budget_s)

    def _after_calibration_run(self) -> None:
        """When `calibration_seeds` runs are scored: their spread is the noise sigma, their mean the first incumbent."""
        rows = self.ledger.experiments()
        facts = view.calibration_facts(rows, self.config.noise.calibration_seeds, self.config.noise, self.config.keep)
        if facts is None:
            return  # more runs to come (or, if too many failed, the next calibration job says so)
        self.ledger.set_meta(**facts)
        first = facts["incumbent"]["exp_id"]
        for r in rows:
            if r.role == "calibration" and r.id != first:
                self.campaign.drop_checkpoint_unless_incumbent(r.id)
        log.info("calibrated: baseline %.4f, sigma %.4f over %d seeds", facts["baseline_mean"], facts["noise_sigma"],
                 len(facts["calibration_scores"]))
        if facts["calibration_disturbed"]:
            log.warning("calibration left out run(s) %s: they trained at a speed far off the others' (a busy machine)",
                        facts["calibration_disturbed"])
        self._resume()

    def _resume(self) -> None:
        """After calibration (now or in an earlier session): repair git, restore the agent, pick up what was left:
        decide candidates that ran but were not decided, queue re-runs of candidates that were interrupted."""
        restart.reconcile_incumbent(self.ledger, self.history)
        if replayed := self.memory.restore(self.view.transitions()):
            log.info("replayed %d transition(s) into the %s agent", replayed, self.proposer.name)
        rows = self.ledger.experiments()
        for exp_id in view.undecided_candidates(rows):
            log.warning("deciding experiment %d, which finished before the controller stopped", exp_id)
            self._decide(exp_id)
        self._retry.extend(i for i in view.interrupted_candidates(rows, MAX_WORKER_LOSSES) if i not in self._retry)

    def _save_checkpoint(self, force: bool = False) -> None:
        """After each update (and at a stop): the learner plus how far into the ledger it has seen."""
        if self.memory.save(force):
            self.ledger.set_meta(agent_updates=self.proposer.updates)  # type: ignore[attr-defined]

    # ---- proposals and decisions -----------------------------------------------------------------

    def _proposal(self) -> Start:
        """Ask the proposer (or, on an audit iteration, the random auditor) for the next candidate."""
        assert self.planner is not None
        state = self.state()
        if isinstance(self.proposer, Learner) and self.proposer.ready():
            self.proposer.update(state)  # the rollout is full: learn, bootstrapped from the state it ends in
        audited = self.view.audits and is_audit(self.config.seed, state.iteration, self.view.audit_fraction)
        proposal = (self._auditor if audited else self.proposer).propose(state)
        faults.point("proposed")
        self._save_checkpoint()
        payload = {"operator": proposal.operator, "arg": proposal.arg, "kind": proposal.kind, "info": proposal.info,
                   "params": proposal.params, "parent_hash": state.incumbent_hash,
                   "incumbent_val_bpb": state.incumbent_val_bpb, "iteration": state.iteration}
        if audited:
            payload["audit"] = True
        return self.planner.candidate(state.incumbent_source, self.view.incumbent().exp_id, payload)

    def _decide(self, exp_id: int) -> None:
        """Keep, discard or queue the evidence a finished candidate owes; record the verdict; tell the proposer."""
        row, rows, inc = self.ledger.get(exp_id), self.ledger.experiments(), self.view.incumbent()
        verdict = judge_candidate(row, rows, inc, float(self.ledger.meta()["noise_sigma"]), self.config)
        if verdict.wait == "confirm" and exp_id not in self._confirm:
            self._confirm.append(exp_id)
        elif verdict.wait == "remeasure" and exp_id not in self._remeasure:
            log.warning("experiment %d trained at %+.0f%% of the machine's speed: re-measuring the incumbent before "
                        "deciding", exp_id, 100 * verdict.throughput_change)
            self._remeasure.append(exp_id)
        if verdict.status is None:
            return
        meta: dict[str, Any] = {"elapsed_s": self.view.elapsed_s()}
        if verdict.kept:
            assert verdict.score is not None
            meta["incumbent"] = Incumbent(exp_id, row.commit_sha, verdict.score, row.source_hash).to_json()
        self.campaign.decide(exp_id, verdict.status, verdict.reward, replaced=(inc.exp_id, inc.sha), **meta)
        transition = next(t for t in reversed(self.view.transitions()) if t.exp_id == exp_id)
        self.memory.observe(transition)
        self.events.experiment_finished(self.ledger.get(exp_id), verdict.status.value)
