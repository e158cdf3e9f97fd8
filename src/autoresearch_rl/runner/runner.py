"""One experiment, end to end: compile check, train under the deadline, evaluate, classify.

Every outcome becomes an ExperimentRecord with a Status; only harness failures raise.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import autoresearch_rl
from autoresearch_rl.env import checkpoint
from autoresearch_rl.env.presets import Preset
from autoresearch_rl.env.runtime import NAN_EXIT_CODE
from autoresearch_rl.experiment import ExperimentRecord, Status, Timings
from autoresearch_rl.runner.logparse import ParsedLog, parse_log
from autoresearch_rl.runner.process import Limits, run_with_deadline

PACKAGE_ROOT = str(Path(autoresearch_rl.__file__).resolve().parent.parent)
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "CUDA_VISIBLE_DEVICES", "ARL_THREADS")


@dataclass(frozen=True)
class RunnerConfig:
    """How experiments are run (not what they compute: that is the preset's)."""

    limits: Limits = field(default_factory=Limits)  # OS limits of the training process
    kill_grace_s: float = 2.0  # SIGTERM to SIGKILL at the deadline
    log_tail_lines: int = 40  # lines of the log kept in the record
    python: str = sys.executable  # interpreter for train.py and the evaluator


def _child_env(preset: Preset, cache_dir: Path, seed: int, checkpoint_dir: Path, launched_at: float) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.update(
        PYTHONPATH=PACKAGE_ROOT,
        PYTHONUNBUFFERED="1",
        PYTHONHASHSEED=str(seed),
        ARL_PRESET=preset.name,
        ARL_CACHE_DIR=str(cache_dir),
        ARL_SEED=str(seed),
        ARL_CHECKPOINT_DIR=str(checkpoint_dir),
        ARL_LAUNCHED_AT=repr(launched_at),
    )
    return env


def compile_error(source: str) -> str:
    try:
        compile(source, "train.py", "exec")
    except SyntaxError as exc:
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    except ValueError as exc:  # e.g. null bytes
        return f"ValueError: {exc}"
    return ""


def _training_failure(parsed: ParsedLog, returncode: int | None, timed_out: bool, signal_no: int | None,
                      deadline_s: float) -> tuple[Status, str] | None:
    """The status of a training process that did not end cleanly, or None when it did."""
    if timed_out:
        return Status.TIMED_OUT, f"killed at the deadline ({deadline_s:.0f} s: budget + start-up allowance)"
    if returncode == NAN_EXIT_CODE or parsed.saw_non_finite_loss:
        return Status.NAN, "training loss became non-finite"
    if returncode != 0:
        if signal_no is not None:
            hint = " (out of memory?)" if signal_no == 9 else ""
            return Status.CRASHED, f"killed by signal {signal_no}{hint}"
        return Status.CRASHED, parsed.last_exception or f"exited with code {returncode}"
    return None


def _evaluate(workspace: Path, preset: Preset, cache_dir: Path, manifest_path: Path | None, config: RunnerConfig,
              env: dict[str, str]) -> tuple[dict, float]:
    out = workspace / "eval.json"
    argv = [config.python, "-m", "autoresearch_rl.env.evaluator", "--checkpoint", str(workspace / "checkpoint"),
            "--preset", preset.name, "--cache-dir", str(cache_dir), "--train-py", str(workspace / "train.py"),
            "--out", str(out)]
    if manifest_path is not None:
        argv += ["--manifest", str(manifest_path)]
    outcome = run_with_deadline(argv, cwd=workspace, env=env, log_path=workspace / "eval.log",
                                deadline_s=preset.eval_timeout_s, kill_grace_s=config.kill_grace_s)
    if outcome.timed_out:
        return {"status": "EVAL_FAILED", "error": f"evaluator timed out after {preset.eval_timeout_s:.0f} s"}, outcome.wall_seconds
    if not out.is_file():
        tail = parse_log(workspace / "eval.log", 5)
        return {"status": "EVAL_FAILED", "error": tail.last_exception or f"evaluator exited with {outcome.returncode}"}, outcome.wall_seconds
    return json.loads(out.read_text()), outcome.wall_seconds


def run_experiment(source: str, workspace: Path, preset: Preset, cache_dir: Path, *, seed: int = 0,
                   manifest_path: Path | None = None, config: RunnerConfig = RunnerConfig()) -> ExperimentRecord:
    """Materialise `source` as workspace/train.py, train it under the preset's budget, score it."""
    started = time.perf_counter()
    workspace = Path(workspace).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "train.py").write_text(source)
    log_path = workspace / "train.log"
    base = dict(seed=seed, log_path=str(log_path), workspace=str(workspace))

    error = compile_error(source)
    if error:
        return ExperimentRecord(status=Status.INVALID, error=error, timings=Timings(total=time.perf_counter() - started), **base)

    launched_at = time.time()
    env = _child_env(preset, Path(cache_dir), seed, workspace / "checkpoint", launched_at)
    outcome = run_with_deadline([config.python, "train.py"], cwd=workspace, env=env, log_path=log_path,
                                deadline_s=preset.deadline_s, limits=config.limits, kill_grace_s=config.kill_grace_s)
    parsed = parse_log(log_path, config.log_tail_lines)
    summary = parsed.summary
    peak = float(summary.get("peak_memory_mb", 0.0) or 0.0) or outcome.peak_rss_mb
    partial = dict(summary=summary, log_tail=parsed.tail, peak_memory_mb=peak, **base)

    def timings(evaluation: float = 0.0) -> Timings:
        return Timings(startup=float(summary.get("startup_seconds", 0.0)), training=float(summary.get("training_seconds", 0.0)),
                       save=float(summary.get("save_seconds", 0.0)), evaluation=evaluation,
                       total=time.perf_counter() - started)

    failure = _training_failure(parsed, outcome.returncode, outcome.timed_out, outcome.signal, preset.deadline_s)
    if failure is not None:
        return ExperimentRecord(status=failure[0], error=failure[1], timings=timings(), **partial)
    if checkpoint.read_meta(workspace / "checkpoint") is None:
        return ExperimentRecord(status=Status.NO_CHECKPOINT, timings=timings(),
                                error="train.py exited without saving a model (it must end with ctx.finish(model, ...))", **partial)

    verdict, eval_seconds = _evaluate(workspace, preset, Path(cache_dir), manifest_path, config, env)
    status = Status(verdict["status"])
    return ExperimentRecord(status=status, val_bpb=verdict.get("val_bpb") if status is Status.OK else None,
                            eval_details=verdict, error=verdict.get("error", ""), timings=timings(eval_seconds), **partial)
