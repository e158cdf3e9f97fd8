"""A campaign is one run directory: ledger, git history, frozen manifest and experiment workspaces.

    runs/default/
      ledger.sqlite          every experiment (SQLite, WAL)
      frozen_manifest.json   hashes of the frozen env recorded when the campaign started
      history/               git: every candidate's train.py; branch `research` = kept versions
      experiments/00001/     workspace of the event log's experiment 1: train.py, train.log, checkpoint/, eval.json
      experiments/verification-00042/  workspace of ledger row 42, a run outside the log (`arl baseline`, `verify`)
      results.tsv            the reference's table: one row per experiment, in its final status
"""

from __future__ import annotations

import hashlib
import logging
import importlib.metadata
import platform
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import autoresearch_rl
from autoresearch_rl.env import integrity
from autoresearch_rl.env.data import Dataset
from autoresearch_rl.env.presets import Preset, get_preset
from autoresearch_rl.errors import UserError
from autoresearch_rl import faults
from autoresearch_rl.backends.base import Executor, JobSpec, execute_job
from autoresearch_rl.experiment import ExperimentRecord, Status
from autoresearch_rl.ledger import CandidateHistory, Ledger, write_results_tsv
from autoresearch_rl.runner import RunnerConfig, run_experiment
from autoresearch_rl.runner.runner import compile_error
from autoresearch_rl.selfeval.accounting import abort_account
from autoresearch_rl.selfeval.audit import audit
from autoresearch_rl.usage import experiments_per_hour, worker_usage

log = logging.getLogger(__name__)


def _installed_version(package: str) -> str:
    """A package's installed version, read without importing it (the controller need not load torch)."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"

MANIFEST_NAME = "frozen_manifest.json"


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


@dataclass
class RunnerExecutor:
    """Trains under the preset's budget in a subprocess and scores with the frozen evaluator."""

    preset: Preset
    cache_dir: Path
    manifest_path: Path
    config: RunnerConfig = RunnerConfig()
    smoke: bool = True  # run the cheap smoke check (one tiny step on random tokens) before spending a budget

    def validate(self, source: str) -> str:
        from autoresearch_rl.target.smoke import smoke_check

        error = compile_error(source)
        if error or not self.smoke:
            return error
        return smoke_check(source, self.preset.name, sandbox=self.config.sandbox).error

    def execute(self, source: str, workspace: Path, seed: int, *, env: Mapping[str, str] | None = None,
                abort: Any = None) -> ExperimentRecord:
        config = replace(self.config, extra_env=tuple(env.items())) if env else self.config
        extra = {"abort": abort} if abort is not None else {}
        return run_experiment(source, workspace, self.preset, self.cache_dir, seed=seed,
                              manifest_path=self.manifest_path, config=config, **extra)


@dataclass
class Campaign:
    """An open run directory. Use `Campaign.open(...)`; close it (or use `with`) when done."""

    run_dir: Path
    preset: Preset
    cache_dir: Path
    ledger: Ledger
    history: CandidateHistory
    executor: Executor | None = None  # None: the real runner (RunnerExecutor) for this campaign's preset

    @classmethod
    def open(cls, run_dir: Path, preset_name: str | None, cache_dir: Path, *, create: bool = True) -> Campaign:
        """Open or create the campaign; refuse when the preset or the frozen environment changed."""
        run_dir, cache_dir = Path(run_dir).resolve(), Path(cache_dir).resolve()
        ledger = Ledger.open(run_dir, create=create)
        try:
            meta = ledger.meta()
            recorded = meta.get("preset")
            if recorded and preset_name and recorded != preset_name:
                raise UserError(f"campaign {run_dir} uses preset {recorded!r}, not {preset_name!r}; drop --preset or use another --run-dir")
            preset = get_preset(recorded or preset_name or "cpu-tiny")
            dataset = Dataset.open(preset, cache_dir)
            manifest = integrity.build_manifest(dataset.root)
            manifest_path = run_dir / MANIFEST_NAME
            if manifest_path.is_file():
                changed = integrity.differences(integrity.read_manifest(manifest_path), manifest)
                if changed:
                    raise UserError(f"frozen environment changed since campaign {run_dir} started ({'; '.join(changed)}); "
                                    f"restore it (`arl prepare --preset {preset.name} --force` rebuilds data) or use a new --run-dir")
            else:
                integrity.write_manifest(manifest_path, manifest)
                ledger.set_meta(preset=preset.name, env_hash=integrity.manifest_hash(manifest),
                                package_version=autoresearch_rl.__version__, torch_version=_installed_version("torch"),
                                python_version=platform.python_version(), hostname=platform.node(),
                                cache_dir=str(cache_dir), seeds=[])
            history = CandidateHistory(run_dir)
            history.ensure()
        except BaseException:
            ledger.close()
            raise
        return cls(run_dir=run_dir, preset=preset, cache_dir=Path(cache_dir), ledger=ledger, history=history)

    def __enter__(self) -> Campaign:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.ledger.close()

    @property
    def manifest_path(self) -> Path:
        return self.run_dir / MANIFEST_NAME

    def workspace(self, exp: int) -> Path:
        """The workspace of the event log's experiment `exp` (rows outside the log: `row_workspace`)."""
        return self.run_dir / "experiments" / f"{exp:05d}"

    def row_workspace(self, exp_id: int, role: str) -> Path:
        """Where a run outside the event log (a baseline, a verification) trains: named by its role and ledger
        row, so it never shares a directory with an experiment of the log; recorded in the row."""
        workspace = self.run_dir / "experiments" / f"{role}-{exp_id:05d}"
        self.ledger.set_workspace(exp_id, str(workspace))
        return workspace

    def recover(self) -> int:
        """Mark experiments left RUNNING by a killed controller as INTERRUPTED; returns how many."""
        return self.ledger.mark_interrupted("the controller stopped while it ran; it was not scored")

    def get_executor(self) -> Executor:
        if self.executor is None:
            self.executor = RunnerExecutor(self.preset, self.cache_dir, self.manifest_path)
        return self.executor

    def run(self, source: str, *, role: str, description: str, seed: int, parent_id: int | None = None,
            diff: str = "", proposal: dict[str, Any] | None = None, retry_of: int | None = None,
            validate: bool = False, keep_checkpoint: bool = False, rejected: str = "") -> tuple[int, ExperimentRecord]:
        """Record, (validate,) run and score one train.py in this process; the ledger sees every state change.

        `validate` runs the executor's cheap check first: a failure is an INVALID_EDIT record that cost
        seconds, not a budget. `keep_checkpoint` leaves the trained model for a later keep decision.
        `rejected` records an INVALID_EDIT with that reason without running anything.
        """
        spec = self.start(source, role=role, description=description, seed=seed, parent_id=parent_id, diff=diff,
                          proposal=proposal, retry_of=retry_of, validate=validate, rejected=rejected)
        try:
            record = execute_job(self.get_executor(), spec)
        except BaseException:
            self.ledger.mark_interrupted("interrupted while running")
            raise
        faults.point("experiment_ran")
        self.finish(spec, record, role=role, keep_checkpoint=keep_checkpoint)
        return spec.exp_id, record

    def start(self, source: str, *, role: str, description: str, seed: int, parent_id: int | None = None,
              diff: str = "", proposal: dict[str, Any] | None = None, retry_of: int | None = None,
              validate: bool = False, rejected: str = "", abort: Any = None) -> JobSpec:
        """Record the experiment as RUNNING and commit its train.py; returns what a worker needs to run it."""
        parent_sha = self.history.incumbent()
        exp_id = self.ledger.start_experiment(role=role, source_hash=source_hash(source), description=description,
                                              diff=diff, parent_id=parent_id, seed=seed, proposal=proposal,
                                              retry_of=retry_of)
        workspace = self.row_workspace(exp_id, role)
        faults.point("experiment_started")
        try:
            sha = self.history.record(source, description, parent=parent_sha, exp_id=exp_id)
            self.ledger.set_commit(exp_id, sha)
        except BaseException:
            self.ledger.mark_interrupted("interrupted while starting")
            raise
        return JobSpec(exp_id=exp_id, source=source, workspace=str(workspace), seed=seed,
                       validate=validate, rejected=rejected, abort=abort)

    def finish(self, spec: JobSpec, record: ExperimentRecord, *, role: str, keep_checkpoint: bool = False) -> None:
        """Record a worker's result; a baseline becomes the first incumbent; unneeded checkpoints go."""
        self.ledger.finish_experiment(spec.exp_id, record)
        faults.point("experiment_finished")
        seeds = self.ledger.meta().get("seeds", [])
        if spec.seed not in seeds:
            self.ledger.set_meta(seeds=sorted([*seeds, spec.seed]))
        if record.status is Status.OK and role == "baseline" and self.history.incumbent() is None:
            sha = self.ledger.get(spec.exp_id).commit_sha
            if sha:
                self.history.keep(sha)  # the first scored baseline is the starting incumbent
        if not keep_checkpoint:
            self.drop_checkpoint_unless_incumbent(spec.exp_id)
        write_results_tsv(self.ledger, self.run_dir / "results.tsv")

    def drop_checkpoint_unless_incumbent(self, exp_id: int) -> None:
        """Checkpoints are large on GPU presets; only the incumbent's is worth keeping."""
        sha = self.history.experiment_commit(exp_id)
        if sha is None or self.history.incumbent() != sha:
            workspace = self.ledger.get(exp_id).workspace
            shutil.rmtree((Path(workspace) if workspace else self.workspace(exp_id)) / "checkpoint", ignore_errors=True)

    def summary(self) -> dict[str, Any]:
        """What `arl status` prints: counts by status, baseline and best val_bpb, what is running."""
        meta = self.ledger.meta()
        return campaign_summary(self.run_dir, meta, self.ledger)


def _drift_json(rows: list) -> dict[str, Any] | None:
    """Re-measurements of the incumbent and the machine changes they found (None when there were none)."""
    if not any(r.role == "remeasure" for r in rows):
        return None
    from autoresearch_rl.core.drift import DriftMonitor
    from autoresearch_rl.selfeval.drift import drift_account

    return drift_account(rows, DriftMonitor()).to_json()


def campaign_summary(run_dir: Path, meta: dict[str, Any], ledger: Ledger) -> dict[str, Any]:
    """`arl status --json`: safe to call while another process runs the campaign (SQLite WAL readers never block)."""
    rows = ledger.experiments()
    baseline, best = ledger.baseline(), ledger.best()
    scored_baselines = [r.val_bpb for r in rows if r.role in ("baseline", "calibration") and r.val_bpb is not None]
    candidates = [r for r in rows if r.role == "candidate" and r.decided and r.status is not Status.INTERRUPTED]
    incumbent = meta.get("incumbent") or {}
    baseline_bpb = meta.get("baseline_mean", baseline.val_bpb if baseline else None)
    best_bpb = incumbent.get("val_bpb", best.val_bpb if best else None)
    running = [r for r in rows if r.status is Status.RUNNING]
    elapsed_s = float(meta.get("elapsed_s", 0.0))
    per_hour = experiments_per_hour(rows, elapsed_s)
    return {
        "run_dir": str(run_dir),
        "preset": meta.get("preset"),
        "env_hash": meta.get("env_hash"),
        "agent": meta.get("agent"),
        "experiments": len(rows),
        # the core loop's budget counts every run after calibration (confirmations, re-measurements): as --max-iters
        "iterations": (sum(r.role in ("candidate", "confirmation", "remeasure") and r.status is not Status.RUNNING
                           for r in rows) if meta.get("loop") == "core" else len(candidates)),
        "counts": ledger.counts_by_status(),
        "kept": sum(r.status is Status.KEPT for r in candidates),
        "baseline_val_bpb": None if baseline_bpb is None else round(baseline_bpb, 6),
        "baseline_runs": len(scored_baselines),
        "best_val_bpb": None if best_bpb is None else round(best_bpb, 6),
        "best_experiment": incumbent.get("exp_id", best.id if best else None),
        "noise_sigma": meta.get("noise_sigma"),
        "calibration_disturbed": meta.get("calibration_disturbed", []),  # left out: trained far off the others' speed
        "keep_margin": meta.get("keep_margin"),
        # a checkpointed learner records its updates; a policy fine-tuned from the ledger, with each proposal
        "agent_updates": max([int(meta.get("agent_updates", 0))] + [int((r.proposal.get("info") or {}).get(
            "policy_version", 0)) for r in candidates]),
        "elapsed_hours": round(float(meta.get("elapsed_s", 0.0)) / 3600, 4),
        "device_hours": round(sum(r.timings.total for r in rows) / 3600, 4),
        "experiments_per_hour": None if per_hour is None else round(per_hour, 2),
        "audit": audit(rows, float(meta.get("keep_margin") or 0.0)).to_json()
        if any(r.proposal.get("audit") for r in candidates) else None,
        "workers": [w.to_json() for w in worker_usage(rows, elapsed_s)],
        "early_abort": abort_account(rows).to_json() if meta.get("early_abort") else None,
        "running": [{"id": r.id, "role": r.role, "description": r.description} for r in running],
        "stop_reason": meta.get("stop_reason"),
        "stop_rule": meta.get("stop_rule"),
        "drift": _drift_json(rows),
        "verified": ({k: meta["verified"][k] for k in ("baseline_mean", "best_mean", "gain", "ci95_low", "ci95_high",
                                                        "runs_each")}
                     if meta.get("verified") and meta["verified"].get("best_sha") == incumbent.get("sha") else None),
    }
