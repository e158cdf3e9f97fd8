"""A campaign is one run directory: ledger, git history, frozen manifest and experiment workspaces.

    runs/default/
      ledger.sqlite          every experiment (SQLite, WAL)
      frozen_manifest.json   hashes of the frozen env recorded when the campaign started
      history/               git: every candidate's train.py; branch `research` = kept versions
      experiments/00001/     workspace of experiment 1: train.py, train.log, checkpoint/, eval.json
      results.tsv            the reference's table, rewritten after each experiment
"""

from __future__ import annotations

import hashlib
import logging
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import autoresearch_rl
from autoresearch_rl.env import integrity
from autoresearch_rl.env.data import Dataset
from autoresearch_rl.env.presets import Preset, get_preset
from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import ExperimentRecord, Status
from autoresearch_rl.ledger import CandidateHistory, ExperimentRow, Ledger, write_results_tsv
from autoresearch_rl.runner import RunnerConfig, run_experiment

log = logging.getLogger(__name__)

MANIFEST_NAME = "frozen_manifest.json"


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


@dataclass
class Campaign:
    """An open run directory. Use `Campaign.open(...)`; close it (or use `with`) when done."""

    run_dir: Path
    preset: Preset
    cache_dir: Path
    ledger: Ledger
    history: CandidateHistory
    runner_config: RunnerConfig = RunnerConfig()

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
                                package_version=autoresearch_rl.__version__, torch_version=torch.__version__,
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

    def workspace(self, exp_id: int) -> Path:
        return self.run_dir / "experiments" / f"{exp_id:05d}"

    def recover(self) -> int:
        """Mark experiments left RUNNING by a killed controller as INTERRUPTED; returns how many."""
        return self.ledger.mark_interrupted("the controller stopped while it ran; it was not scored")

    def run(self, source: str, *, role: str, description: str, seed: int, parent_id: int | None = None,
            diff: str = "") -> tuple[int, ExperimentRecord]:
        """Record, run and score one train.py; the ledger sees every state change."""
        parent_sha = self.history.incumbent()
        exp_id = self.ledger.start_experiment(role=role, source_hash=source_hash(source), description=description,
                                              diff=diff, parent_id=parent_id, seed=seed)
        try:
            sha = self.history.record(source, description, parent=parent_sha, exp_id=exp_id)
            self.ledger.set_commit(exp_id, sha)
            record = run_experiment(source, self.workspace(exp_id), self.preset, self.cache_dir, seed=seed,
                                    manifest_path=self.manifest_path, config=self.runner_config)
        except BaseException:
            self.ledger.mark_interrupted("interrupted while running")
            raise
        self.ledger.finish_experiment(exp_id, record)
        seeds = self.ledger.meta().get("seeds", [])
        if seed not in seeds:
            self.ledger.set_meta(seeds=sorted([*seeds, seed]))
        if record.status is Status.OK and role == "baseline" and parent_sha is None:
            self.history.keep(sha)  # the first scored baseline is the starting incumbent
        self._drop_checkpoint_unless_incumbent(exp_id, sha)
        write_results_tsv(self.ledger, self.run_dir / "results.tsv")
        return exp_id, record

    def _drop_checkpoint_unless_incumbent(self, exp_id: int, sha: str) -> None:
        """Checkpoints are large on GPU presets; only the incumbent's is worth keeping."""
        if self.history.incumbent() != sha:
            shutil.rmtree(self.workspace(exp_id) / "checkpoint", ignore_errors=True)

    def summary(self) -> dict[str, Any]:
        """What `arl status` prints: counts by status, baseline and best val_bpb, what is running."""
        meta = self.ledger.meta()
        return campaign_summary(self.run_dir, meta, self.ledger)


def _bpb(row: ExperimentRow | None) -> float | None:
    return None if row is None or row.val_bpb is None else round(row.val_bpb, 6)


def campaign_summary(run_dir: Path, meta: dict[str, Any], ledger: Ledger) -> dict[str, Any]:
    rows = ledger.experiments()
    baseline, best = ledger.baseline(), ledger.best()
    scored_baselines = [r.val_bpb for r in rows if r.role == "baseline" and r.val_bpb is not None]
    return {
        "run_dir": str(run_dir),
        "preset": meta.get("preset"),
        "env_hash": meta.get("env_hash"),
        "experiments": len(rows),
        "counts": ledger.counts_by_status(),
        "baseline_val_bpb": _bpb(baseline),
        "baseline_runs": len(scored_baselines),
        "best_val_bpb": _bpb(best),
        "best_experiment": best.id if best else None,
        "running": [r.id for r in rows if r.status is Status.RUNNING],
        "stop_reason": meta.get("stop_reason"),
    }

