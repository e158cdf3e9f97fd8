"""The controller: calibrate, then propose -> materialise -> run -> evaluate -> decide -> record -> learn, until told to stop.

Every fact the loop acts on is in the ledger, so a controller killed at any instant resumes by
reading it back: experiments left RUNNING become INTERRUPTED and are re-run with the same proposal,
a candidate that ran but was not decided is decided now (the decision is a pure function of its
rows), the incumbent in git is reconciled with the ledger's, and the proposer is restored from its
last checkpoint plus the transitions recorded after it.

Roles in the ledger: `calibration` (the unmodified base train.py with distinct seeds: the noise
sigma and the starting incumbent), `candidate` (one iteration: one proposal), `confirmation` (a
re-run of a candidate's train.py with another seed, when its apparent win was small).
"""

from __future__ import annotations

import hashlib
import logging
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from autoresearch_rl import faults
from autoresearch_rl.agent.protocol import Learner, Proposal, Proposer, SearchState, Transition
from autoresearch_rl.agent.tpe import apply_params
from autoresearch_rl.campaign import Campaign, source_hash
from autoresearch_rl.decision import KeepRule, NoiseConfig, RewardConfig, Verdict, judge, noise_sigma, reward
from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import ExperimentRecord, Status
from autoresearch_rl.ledger import ExperimentRow
from autoresearch_rl.oracle import CampaignProgress, OracleConfig, StopDecision, TerminationOracle, user_interrupt
from autoresearch_rl.target.edits import EditError, unified_diff
from autoresearch_rl.target.space import ActionSpace

log = logging.getLogger(__name__)

AGENT_DIR = "agent"  # the meta-learner's own place in the run directory
CHECKPOINT_NAME = "checkpoint.pt"
STOP_FILE = "STOP"
MAX_CALIBRATION_ATTEMPTS_FACTOR = 2  # calibration gives up after 2x the requested runs fail


@dataclass(frozen=True)
class LoopConfig:
    """How the loop decides and when it stops (what runs is the campaign's preset)."""

    seed: int = 0  # campaign seed: proposers and training seeds derive from it
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    keep: KeepRule = field(default_factory=KeepRule)
    reward: RewardConfig = field(default_factory=RewardConfig)
    oracle: OracleConfig = field(default_factory=OracleConfig)
    smoke_check: bool = True  # validate each candidate with one tiny step before spending its budget


class LoopEvents(Protocol):
    """What a display may want to know; every method is optional to act on."""

    def experiment_started(self, exp_id: int, role: str, description: str) -> None: ...

    def experiment_finished(self, row: ExperimentRow, verdict: str) -> None: ...


class _SilentEvents:
    def experiment_started(self, exp_id: int, role: str, description: str) -> None:
        pass

    def experiment_finished(self, row: ExperimentRow, verdict: str) -> None:
        pass


@dataclass(frozen=True)
class Incumbent:
    exp_id: int
    sha: str
    val_bpb: float
    source_hash: str

    def to_json(self) -> dict[str, Any]:
        return {"exp_id": self.exp_id, "sha": self.sha, "val_bpb": self.val_bpb, "source_hash": self.source_hash}


def resolve_base_source(campaign: Campaign, requested: str | None) -> str:
    """The campaign's base train.py: the recorded one when it has started, else `requested` or the template."""
    meta = campaign.ledger.meta()
    if meta.get("base_commit"):
        return campaign.history.source_at(meta["base_commit"])
    calibration = [r for r in campaign.ledger.experiments() if r.role == "calibration" and r.commit_sha]
    if calibration:
        return campaign.history.source_at(calibration[0].commit_sha)
    if requested is not None:
        return requested
    from autoresearch_rl.target import template_source

    return template_source()


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from any tuple of values (stable across processes, unlike hash())."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "little") & 0x7FFFFFFF


class ResearchLoop:
    """Runs one campaign with one proposer until the termination oracle (or the user) stops it."""

    def __init__(self, campaign: Campaign, proposer: Proposer, config: LoopConfig = LoopConfig(),
                 events: LoopEvents | None = None, base_source: str | None = None) -> None:
        self.campaign = campaign
        self.ledger = campaign.ledger
        self.history = campaign.history
        self.proposer = proposer
        self.config = config
        self.events = events or _SilentEvents()
        self.oracle = TerminationOracle.from_config(config.oracle, stop_file=campaign.run_dir / STOP_FILE)
        self._requested_base = base_source
        self._session_started = time.time()
        self._elapsed_before = 0.0
        self._observed_through = 0  # last experiment id the proposer has seen
        self._saved_updates = -1
        self.base_source = ""
        self.space: ActionSpace | None = None

    # ---- paths and small facts ---------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.campaign.run_dir / AGENT_DIR / CHECKPOINT_NAME

    def run_seed(self, role: str, index: int) -> int:
        """Training seed of an experiment, from (campaign seed, role, iteration): a re-run of an interrupted
        experiment gets the seed it had, so a killed and resumed campaign is the one that never stopped."""
        if role == "calibration":
            return self.config.seed * 1000 + index  # readable: campaign seed 0 calibrates with seeds 0, 1, 2
        return derive_seed(self.config.seed, role, index)

    def elapsed_s(self) -> float:
        return self._elapsed_before + (time.time() - self._session_started)

    # ---- the loop ----------------------------------------------------------------------------

    def run(self) -> StopDecision:
        """Calibrate if needed, resume what was left, then iterate until a stop rule fires or Ctrl-C."""
        meta = self.ledger.meta()
        self._elapsed_before = float(meta.get("elapsed_s", 0.0))
        self._check_agent(meta)
        self.ledger.set_meta(stop_reason=None, stop_rule=None)
        try:
            if n := self.campaign.recover():
                log.warning("marked %d experiment(s) left running by a stopped controller as INTERRUPTED", n)
            self._calibrate()
            self._reconcile_incumbent()
            self._restore_proposer()
            self._resume_pending()
            while True:
                decision = self.oracle.check(self.progress())
                if decision is not None:
                    break
                self.iterate()
        except KeyboardInterrupt:
            decision = user_interrupt(self.progress())
            self._record_stop(decision)
            raise
        self._record_stop(decision)
        return decision

    def _check_agent(self, meta: dict[str, Any]) -> None:
        recorded = meta.get("agent")
        if recorded is None:
            self.ledger.set_meta(agent=self.proposer.name, campaign_seed=self.config.seed)
        elif recorded != self.proposer.name:
            raise UserError(f"campaign {self.campaign.run_dir} was run by agent {recorded!r}, not {self.proposer.name!r}; "
                            f"pass --agent {recorded} to resume it or use another --run-dir")

    def _record_stop(self, decision: StopDecision) -> None:
        self.ledger.set_meta(stop_reason=decision.reason, stop_rule=decision.rule, stop_details=decision.details,
                             elapsed_s=self.elapsed_s())
        self._save_checkpoint(force=True)

    # ---- calibration -------------------------------------------------------------------------

    def _calibrate(self) -> None:
        """Run the base train.py with `calibration_seeds` seeds; their spread is the noise sigma."""
        meta = self.ledger.meta()
        if "noise_sigma" in meta:
            self.base_source = self.history.source_at(meta["base_commit"])
            self.space = ActionSpace.for_source(self.base_source)
            return
        base = resolve_base_source(self.campaign, self._requested_base)
        self.base_source = base
        self.space = ActionSpace.for_source(base)  # fails early on a bad # search: annotation
        wanted = self.config.noise.calibration_seeds
        attempts = 0
        while True:
            rows = [r for r in self.ledger.experiments() if r.role == "calibration"]
            scored = [r for r in rows if r.status.scored]
            if len(scored) >= wanted:
                break
            failed = [r for r in rows if r.status.failed]
            if len(failed) >= wanted * MAX_CALIBRATION_ATTEMPTS_FACTOR or attempts > 4 * wanted:
                last = failed[-1] if failed else rows[-1]
                raise UserError(f"the base train.py does not run ({last.status.value}: {last.error or 'see ' + last.log_path}); "
                                "fix it, check it with `arl baseline`, then resume")
            self._run("calibration", base, f"calibration {len(scored) + 1}/{wanted}: base train.py", parent_id=None,
                      seed=self.run_seed("calibration", sum(r.status is not Status.INTERRUPTED for r in rows)))
            attempts += 1
        scores = [r.val_bpb for r in scored[:wanted] if r.val_bpb is not None]
        sigma = noise_sigma(scores, self.config.noise)
        first = scored[0]
        incumbent = Incumbent(first.id, first.commit_sha, statistics.fmean(scores), first.source_hash)
        self.ledger.set_meta(base_commit=first.commit_sha, noise_sigma=sigma, calibration_scores=scores,
                             baseline_mean=statistics.fmean(scores), incumbent=incumbent.to_json(),
                             keep_margin=self.config.keep.margin_sigmas * sigma)
        for r in (r for r in rows if r.id != first.id):
            self.campaign.drop_checkpoint_unless_incumbent(r.id)
        log.info("calibrated: baseline %.4f, sigma %.4f over %d seeds", incumbent.val_bpb, sigma, len(scores))

    # ---- incumbent -----------------------------------------------------------------------------

    def incumbent(self) -> Incumbent:
        data = self.ledger.meta()["incumbent"]
        return Incumbent(int(data["exp_id"]), data["sha"], float(data["val_bpb"]), data["source_hash"])

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
        """Decided candidates, oldest first (interrupted ones are not transitions: their re-run is)."""
        rows = self.ledger.experiments() if rows is None else rows
        confirmations: dict[int, list[float]] = {}
        for r in rows:
            if r.role == "confirmation" and r.status.scored and r.val_bpb is not None and r.parent_id is not None:
                confirmations.setdefault(r.parent_id, []).append(r.val_bpb)
        out: list[Transition] = []
        for r in rows:
            if r.role != "candidate" or not r.decided or r.status is Status.INTERRUPTED:
                continue
            p = r.proposal
            scores = [r.val_bpb, *confirmations.get(r.id, [])] if r.val_bpb is not None else []
            out.append(Transition(
                exp_id=r.id, iteration=len(out), operator=p.get("operator", ""), arg=p.get("arg", ""),
                kind=p.get("kind", ""), status=r.status, val_bpb=statistics.fmean(scores) if scores else None,
                reward=r.reward if r.reward is not None else self.config.reward.failure_penalty,
                incumbent_val_bpb=float(p.get("incumbent_val_bpb", 0.0)), parent_hash=p.get("parent_hash", ""),
                info=p.get("info", {}), params=p.get("params")))
        return out

    def state(self) -> SearchState:
        assert self.space is not None
        inc = self.incumbent()
        source = self.history.source_at(inc.sha)
        meta = self.ledger.meta()
        history = tuple(self.transitions())
        return SearchState(incumbent_source=source, incumbent_hash=inc.source_hash, incumbent_val_bpb=inc.val_bpb,
                           base_source=self.base_source, space=self.space, mask=tuple(self.space.mask(source)),
                           history=history, noise_sigma=float(meta["noise_sigma"]),
                           budget_used=self._budget_used(len(history)))

    def _budget_used(self, iterations: int) -> float:
        o = self.config.oracle
        fractions = [0.0]
        if o.max_iters:
            fractions.append(iterations / o.max_iters)
        if o.max_hours:
            fractions.append(self.elapsed_s() / 3600 / o.max_hours)
        if o.max_device_hours:
            fractions.append(self._device_hours() / o.max_device_hours)
        return min(1.0, max(fractions))

    def _device_hours(self, rows: list[ExperimentRow] | None = None) -> float:
        rows = self.ledger.experiments() if rows is None else rows
        return sum(r.timings.total for r in rows) / 3600.0

    def progress(self) -> CampaignProgress:
        rows = self.ledger.experiments()
        transitions = self.transitions(rows)
        margin = float(self.ledger.meta().get("keep_margin", 0.0))
        improvements = tuple(t.iteration + 1 for t in transitions
                             if t.kept and t.val_bpb is not None and t.incumbent_val_bpb - t.val_bpb > margin)
        entropy = getattr(self.proposer, "last_entropy_ratio", None)
        floor = getattr(self.proposer, "entropy_floor_ratio", None)
        return CampaignProgress(iterations=len(transitions), elapsed_hours=self.elapsed_s() / 3600,
                                device_hours=self._device_hours(rows), improvement_iterations=improvements,
                                entropy_ratio=entropy, entropy_floor_ratio=floor)

    # ---- the proposer's memory -------------------------------------------------------------------

    def _restore_proposer(self) -> None:
        """Load the last checkpoint (if any, and readable), then replay the transitions recorded after it."""
        start = 0
        if isinstance(self.proposer, Learner) and self.checkpoint_path.is_file():
            try:
                saved = torch.load(self.checkpoint_path, weights_only=True)
                if saved.get("proposer") != self.proposer.name:
                    raise ValueError(f"checkpoint is for {saved.get('proposer')!r}")
                self.proposer.load_state_dict(saved["state"])
                start = int(saved["last_exp_id"])
            except Exception as exc:  # noqa: BLE001 - a bad checkpoint is rebuilt from the ledger, loudly
                log.warning("agent checkpoint %s is unreadable (%s); rebuilding the agent from the ledger",
                            self.checkpoint_path, exc)
                start = 0
        replayed = 0
        for t in self.transitions():
            if t.exp_id > start:
                self.proposer.observe(t)
                replayed += 1
            self._observed_through = max(self._observed_through, t.exp_id)
        if replayed:
            log.info("replayed %d transition(s) into the %s agent", replayed, self.proposer.name)
        self._saved_updates = getattr(self.proposer, "updates", -1)

    def _save_checkpoint(self, force: bool = False) -> None:
        """After each update (and at a stop), atomically: the learner plus how far into the ledger it has seen."""
        if not isinstance(self.proposer, Learner):
            return
        if not force and self.proposer.updates == self._saved_updates:
            return
        path = self.checkpoint_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        payload = {"proposer": self.proposer.name, "last_exp_id": self._observed_through,
                   "updates": self.proposer.updates, "state": self.proposer.state_dict()}
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        faults.point("checkpoint_written")
        os.replace(tmp, path)
        self._saved_updates = self.proposer.updates
        self.ledger.set_meta(agent_updates=self.proposer.updates)

    # ---- one iteration ---------------------------------------------------------------------------

    def iterate(self) -> None:
        """Propose one candidate, run it, decide, and let the proposer learn from it."""
        state = self.state()
        proposal = self.proposer.propose(state)
        faults.point("proposed")
        self._save_checkpoint()
        payload = {"operator": proposal.operator, "arg": proposal.arg, "kind": proposal.kind, "info": proposal.info,
                   "params": proposal.params, "parent_hash": state.incumbent_hash,
                   "incumbent_val_bpb": state.incumbent_val_bpb, "iteration": state.iteration}
        self._run_candidate(state.incumbent_source, payload, retry_of=None)

    def _materialise(self, incumbent_source: str, payload: dict[str, Any]) -> tuple[str, str]:
        """The candidate train.py and its one-line description."""
        assert self.space is not None
        if payload.get("params") is not None:
            return apply_params(self.base_source, payload["params"])
        index = self.space.index(payload["operator"], payload["arg"])
        edit = self.space.apply(index, incumbent_source)
        return edit.after, edit.description

    def _run_candidate(self, incumbent_source: str, payload: dict[str, Any], retry_of: int | None) -> None:
        inc = self.incumbent()
        rejected = ""
        try:
            source, description = self._materialise(incumbent_source, payload)
        except EditError as exc:  # a proposer asked for a masked action: recorded and penalised, not fatal
            source, description = incumbent_source, f"{payload['operator']} {payload['arg']} (not applicable)"
            rejected = str(exc)
        exp_id = self._run("candidate", source, description, parent_id=inc.exp_id, proposal=payload, retry_of=retry_of,
                           seed=self.run_seed("candidate", payload["iteration"]),
                           validate=self.config.smoke_check, rejected=rejected,
                           diff=unified_diff(incumbent_source, source))
        self._decide(exp_id)

    def _run(self, role: str, source: str, description: str, *, parent_id: int | None, seed: int, **kw: Any) -> int:
        self.events.experiment_started(len(self.ledger.experiments()) + 1, role, description)
        exp_id, _ = self.campaign.run(source, role=role, description=description, seed=seed,
                                      parent_id=parent_id, keep_checkpoint=True, **kw)
        if role != "candidate":
            self.events.experiment_finished(self.ledger.get(exp_id), role)
        return exp_id

    # ---- decisions -------------------------------------------------------------------------------

    def _decide(self, exp_id: int) -> None:
        """Keep, discard or confirm a finished candidate; record the verdict and tell the proposer."""
        row = self.ledger.get(exp_id)
        inc = self.incumbent()
        sigma = float(self.ledger.meta()["noise_sigma"])
        kept = False
        if row.status.failed or row.val_bpb is None:
            status, score = row.status, None
        else:
            runs = [row.val_bpb] + self._confirmations(exp_id)
            verdict = judge(inc.val_bpb, runs, sigma, self.config.keep)
            if verdict is Verdict.CONFIRM:
                attempt = sum(r.role == "confirmation" and r.parent_id == exp_id for r in self.ledger.experiments())
                confirmation = self._run("confirmation", self.history.source_at(row.commit_sha),
                                         f"confirmation of experiment {exp_id}: {row.description}", parent_id=exp_id,
                                         seed=self.run_seed("confirmation", row.proposal.get("iteration", exp_id)))
                crow = self.ledger.get(confirmation)
                if crow.val_bpb is None or not crow.status.scored:
                    verdict = Verdict.DISCARD  # it does not reproduce under another seed
                else:
                    runs.append(crow.val_bpb)
                    verdict = judge(inc.val_bpb, runs, sigma, self.config.keep)
            score = statistics.fmean(runs)
            kept = verdict is Verdict.KEEP
            status = Status.KEPT if kept else Status.DISCARDED
        r = reward(inc.val_bpb, score, sigma, self.config.reward)
        meta: dict[str, Any] = {"elapsed_s": self.elapsed_s()}
        if kept:
            assert score is not None
            meta["incumbent"] = Incumbent(exp_id, row.commit_sha, score, row.source_hash).to_json()
        faults.point("before_decision")
        self.ledger.decide(exp_id, status, r, **meta)
        faults.point("decided")
        if kept:
            self.history.keep(row.commit_sha)
            if inc.sha != self.ledger.meta().get("base_commit"):  # the baseline's model stays: held-out test in the report
                self.campaign.drop_checkpoint_unless_incumbent(inc.exp_id)
        else:
            self.campaign.drop_checkpoint_unless_incumbent(exp_id)
        from autoresearch_rl.ledger import write_results_tsv

        write_results_tsv(self.ledger, self.campaign.run_dir / "results.tsv")
        decided = self.ledger.get(exp_id)
        transition = next(t for t in reversed(self.transitions()) if t.exp_id == exp_id)
        self.proposer.observe(transition)
        self._observed_through = max(self._observed_through, exp_id)
        self.events.experiment_finished(decided, status.value)

    def _confirmations(self, exp_id: int) -> list[float]:
        return [r.val_bpb for r in self.ledger.experiments()
                if r.role == "confirmation" and r.parent_id == exp_id and r.status.scored and r.val_bpb is not None]

    def _resume_pending(self) -> None:
        """Decide candidates that ran but were not decided; re-run candidates that were interrupted."""
        rows = self.ledger.experiments()
        retried = {r.retry_of for r in rows if r.retry_of is not None}
        for row in rows:
            if row.role != "candidate":
                continue
            if row.status is Status.OK:
                log.warning("deciding experiment %d, which finished before the controller stopped", row.id)
                self._decide(row.id)
            elif row.status is Status.INTERRUPTED and row.id not in retried:
                current = self.incumbent()
                if row.proposal.get("parent_hash") != current.source_hash:
                    continue  # proposed against an older incumbent; its retry would be another experiment
                log.warning("re-running experiment %d, interrupted before it was scored", row.id)
                self._run_candidate(self.history.source_at(current.sha), row.proposal, retry_of=row.id)
