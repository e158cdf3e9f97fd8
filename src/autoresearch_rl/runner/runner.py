"""One experiment, end to end: compile check, train under the deadline in a sandbox, guard, evaluate, classify.

Every outcome becomes an ExperimentRecord with a Status; only harness failures raise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import autoresearch_rl
from autoresearch_rl.env.data import dataset_dir
from autoresearch_rl.env.presets import Preset
from autoresearch_rl.experiment import ExperimentRecord, Status, Timings
from autoresearch_rl.runner import sandbox as sb
from autoresearch_rl.runner.guard import FrozenSnapshot
from autoresearch_rl.logparse import ParsedLog, parse_log
from autoresearch_rl.runner.process import Limits, ProcessOutcome, run_with_deadline
from autoresearch_rl.selfeval.abort import SUMMARY_KEYS, AbortSpec
from autoresearch_rl.selfeval.curves import compact_curve

PACKAGE_ROOT = str(Path(autoresearch_rl.__file__).resolve().parent.parent)
_PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "ARL_THREADS", "ARL_DEVICE")
_CLOCK_SLACK_S = 0.05  # elapsed is printed with two decimals
_EVALUATOR_STATUSES = ("OK", "NAN", "NONCAUSAL", "INTEGRITY_FAILED", "EVAL_FAILED", "NO_CHECKPOINT")
_ERRNO_LIMITS = (("[Errno 24]", "open-file limit: too many open files"),  # limits the candidate hit inside itself
                 ("[Errno 28]", "disk full: no space left on device"),
                 ("[Errno 122]", "disk quota exceeded"))


@dataclass(frozen=True)
class RunnerConfig:
    """How experiments are run (not what they compute: that is the preset's)."""

    limits: Limits = field(default_factory=Limits)  # resource limits of the training process tree
    kill_grace_s: float = 2.0  # SIGTERM to SIGKILL at the deadline
    log_tail_lines: int = 40  # lines of the log kept in the record
    python: str = sys.executable  # interpreter for train.py and the evaluator
    sandbox: str = "auto"  # "auto" (best available), "bwrap", "unshare" or "none"; see runner/sandbox.py
    package_root: str = PACKAGE_ROOT  # directory holding the autoresearch_rl package the candidate imports
    import_candidate_code: bool = True  # let the evaluator import train.py for models torch.export cannot save
    extra_env: tuple[tuple[str, str], ...] = ()  # set for every process of the run: the worker slot's device pinning
    data_seed: int = 0  # order of the training windows (ARL_DATA_SEED): one per campaign, shared by its runs


def compile_error(source: str) -> str:
    try:
        compile(source, "train.py", "exec")
    except SyntaxError as exc:
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    except ValueError as exc:  # e.g. null bytes
        return f"ValueError: {exc}"
    return ""


def _base_env(config: RunnerConfig, seed: int) -> dict[str, str]:
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.update(config.extra_env)
    env.update(PYTHONPATH=config.package_root, PYTHONUNBUFFERED="1", PYTHONHASHSEED=str(seed),
               PYTHONDONTWRITEBYTECODE="1")  # any bytecode write during a run is then tampering (guard.py)
    return env


def run_candidate(argv: list[str], *, workspace: Path, env: dict[str, str], confinement: sb.Confinement,
                  config: RunnerConfig, log_path: Path, deadline_s: float, limits: Limits | None = None,
                  monitor: Callable[[], str | None] | None = None) -> tuple[ProcessOutcome, sb.Sandbox]:
    """Run candidate code in `workspace` inside the configured sandbox under the deadline and limits."""
    sandbox = sb.select(config.sandbox)
    sb.prepare_workspace(workspace)
    outcome = run_with_deadline(sandbox.wrap(argv, confinement), cwd=workspace, env={**env, **sandbox.env(confinement)},
                                log_path=log_path, deadline_s=deadline_s, limits=limits or config.limits,
                                kill_grace_s=config.kill_grace_s, disk_path=workspace, monitor=monitor)
    return outcome, sandbox


def _training_failure(parsed: ParsedLog, outcome: ProcessOutcome, preset: Preset,
                      limits: Limits) -> tuple[Status, str] | None:
    """The status of a training process that did not end cleanly, or None when it did."""
    if outcome.violation is not None:
        return Status.RESOURCE_LIMIT, outcome.violation.detail
    if outcome.timed_out:
        return Status.TIMED_OUT, f"killed at the deadline ({preset.deadline_s:.0f} s: budget + start-up allowance)"
    if outcome.signal == signal.SIGXFSZ or "[Errno 27]" in parsed.last_exception:  # Python ignores SIGXFSZ: EFBIG
        return Status.RESOURCE_LIMIT, f"file-size limit: a file grew past {limits.file_size_mb} MB"
    from autoresearch_rl.env.runtime import NAN_EXIT_CODE  # the frozen runtime imports torch: only when a run failed

    if outcome.returncode == NAN_EXIT_CODE or parsed.saw_non_finite_loss:
        return Status.NAN, "training loss became non-finite"
    if outcome.returncode != 0:
        exc = parsed.last_exception
        for marker, message in _ERRNO_LIMITS:
            if marker in exc:
                return Status.RESOURCE_LIMIT, f"{message} ({exc})"
        if exc.startswith("MemoryError") and limits.address_space_mb is not None:
            return Status.RESOURCE_LIMIT, f"memory limit: address space {limits.address_space_mb} MB ({exc})"
        if outcome.signal is not None:
            hint = " (out of memory?)" if outcome.signal == signal.SIGKILL else ""
            return Status.CRASHED, f"killed by signal {outcome.signal}{hint}"
        return Status.CRASHED, exc or f"exited with code {outcome.returncode}"
    return None


def _over_budget(parsed: ParsedLog, preset: Preset) -> str:
    """Why a run trained past its budget by the frozen runtime's own progress lines, or ''.

    Honestly, a step is reported below 100% only while the clock is below the budget, and the loop
    stops at the first step that reaches 100% (however long that step took). A line below 100%
    after the budget means the budget was stretched; more lines at 100% mean the loop ran on.
    A candidate that falsifies these lines too is bounded by the hard deadline only.
    """
    budget = preset.time_budget_s
    reported = [p for p in parsed.progress if p.percent is not None]
    stretched = [p for p in reported if p.percent < 100 and p.elapsed > budget + _CLOCK_SLACK_S]  # type: ignore[operator]
    if stretched:
        return (f"still below its budget after {stretched[-1].elapsed:.1f} s of training by the runtime's clock, "
                f"budget {budget:.0f} s (was the budget or the clock patched?)")
    after_end = [p for p in reported if p.percent >= 100]  # type: ignore[operator]
    if len(after_end) > 2:  # two can be honest: 99.96% prints as 100.0%
        return (f"kept training for {len(after_end) - 1} steps after its budget ran out, until "
                f"{after_end[-1].elapsed:.1f} s (train.py must stop when ctx.budget.exhausted)")
    return ""


def _has_checkpoint(directory: Path) -> bool:
    """A finished save (meta.json written last); a file the candidate forged unreadably counts as none."""
    from autoresearch_rl.env import checkpoint  # imports torch: the controller pays for it only once a run ended

    try:
        return isinstance(checkpoint.read_meta(directory), dict)
    except (OSError, ValueError):
        return False


def _evaluate(workspace: Path, preset: Preset, cache_dir: Path, manifest_path: Path | None, config: RunnerConfig,
              env: dict[str, str]) -> tuple[dict, float]:
    out = workspace / "eval.json"
    out.unlink(missing_ok=True)  # a verdict the candidate planted must not be read if the evaluator dies
    argv = [config.python, "-m", "autoresearch_rl.env.evaluator", "--checkpoint", str(workspace / "checkpoint"),
            "--preset", preset.name, "--cache-dir", str(cache_dir), "--out", str(out)]
    if config.import_candidate_code:
        argv += ["--train-py", str(workspace / "train.py")]
    if manifest_path is not None:
        argv += ["--manifest", str(manifest_path)]
    # sandboxed too: imported candidate code (the export fallback) must not write or phone home from here
    outcome, _ = run_candidate(argv, workspace=workspace, env=env, confinement=sb.evaluation_confinement(workspace),
                               config=config, log_path=workspace / "eval.log", deadline_s=preset.eval_timeout_s,
                               limits=Limits())
    if outcome.timed_out:
        return {"status": "EVAL_FAILED", "error": f"evaluator timed out after {preset.eval_timeout_s:.0f} s"}, outcome.wall_seconds
    try:
        verdict = json.loads(out.read_text()) if outcome.returncode == 0 else None
    except (OSError, ValueError):
        verdict = None
    if not isinstance(verdict, dict) or verdict.get("status") not in _EVALUATOR_STATUSES:
        tail = parse_log(workspace / "eval.log", 5)
        return {"status": "EVAL_FAILED", "error": tail.last_exception or f"evaluator exited with {outcome.returncode}"}, outcome.wall_seconds
    return verdict, outcome.wall_seconds


OUTPUTS = ("train.log", "eval.log", "eval.json", "test_eval.json", "checkpoint")  # what a run leaves in its workspace


def _clear_outputs(workspace: Path) -> None:
    """A run starts from a clean workspace: a run cut off by a kill is run again in its own directory, and its
    half-written log (appended to), model or verdict must not be read as the new run's."""
    for name in OUTPUTS:
        path = workspace / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def run_experiment(source: str, workspace: Path, preset: Preset, cache_dir: Path, *, seed: int = 0,
                   manifest_path: Path | None = None, config: RunnerConfig = RunnerConfig(),
                   abort: AbortSpec | None = None) -> ExperimentRecord:
    """Materialise `source` as workspace/train.py, train it under the preset's budget, score it.

    With `abort`, the run is followed as it trains and stopped early (status ABORTED, no val_bpb) when
    its loss curve says it will not beat the incumbent (selfeval/abort.py); a shadow spec only
    records where that would have happened.
    """
    started = time.perf_counter()
    workspace = Path(workspace).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    _clear_outputs(workspace)
    (workspace / "train.py").write_text(source)
    log_path = workspace / "train.log"
    base = dict(seed=seed, log_path=str(log_path), workspace=str(workspace))

    error = compile_error(source)
    if error:
        return ExperimentRecord(status=Status.INVALID, error=error, timings=Timings(total=time.perf_counter() - started), **base)

    cache_dir = Path(cache_dir).resolve()
    env = _base_env(config, seed)
    train_env = {**env, "ARL_PRESET": preset.name, "ARL_CACHE_DIR": str(cache_dir), "ARL_SEED": str(seed),
                 "ARL_DATA_SEED": str(config.data_seed),
                 "ARL_CHECKPOINT_DIR": str(workspace / "checkpoint"), "ARL_LAUNCHED_AT": repr(time.time())}
    snapshot = FrozenSnapshot.take(Path(config.package_root), dataset_dir(preset, cache_dir))
    confinement = sb.training_confinement(workspace, preset, cache_dir, Path(config.package_root))
    monitor = None
    if abort is not None:
        from autoresearch_rl.selfeval.monitor import CurveMonitor  # here: the monitor imports the runner package

        monitor = CurveMonitor(abort, log_path, offset=log_path.stat().st_size if log_path.exists() else 0)
    outcome, sandbox = run_candidate([config.python, "train.py"], workspace=workspace, env=train_env,
                                     confinement=confinement, config=config, log_path=log_path,
                                     deadline_s=preset.deadline_s, monitor=monitor)
    parsed = parse_log(log_path, config.log_tail_lines)
    # the summary is printed inside the candidate's process; what the runner measured itself overrides it
    reported_peak = parsed.summary.get("peak_memory_mb")
    peak = max(outcome.peak_rss_mb, float(reported_peak) if isinstance(reported_peak, (int, float)) else 0.0)
    printed = {k: v for k, v in parsed.summary.items() if k not in SUMMARY_KEYS}  # the runner's own, not forgeable
    summary = {**printed, "sandbox": sandbox.level, "unenforced": ",".join(sandbox.unenforced),
               "peak_tasks": outcome.peak_tasks, **(monitor.summary() if monitor is not None else {}),
               "curve": compact_curve([p.elapsed for p in parsed.progress], [p.loss for p in parsed.progress],
                                      [p.tokens for p in parsed.progress])}
    partial = dict(summary=summary, log_tail=parsed.tail, peak_memory_mb=peak, **base)

    def timings(evaluation: float = 0.0) -> Timings:
        def seconds(key: str) -> float:
            value = parsed.summary.get(key, 0.0)
            return float(value) if isinstance(value, (int, float)) else 0.0

        return Timings(startup=seconds("startup_seconds"), training=seconds("training_seconds"),
                       save=seconds("save_seconds"), evaluation=evaluation, total=time.perf_counter() - started)

    changed = snapshot.changes(manifest_path)
    if changed:  # checked before anything else: a tampered evaluator must never run
        return ExperimentRecord(status=Status.INTEGRITY_FAILED, timings=timings(),
                                error="frozen files changed: " + "; ".join(changed), **partial)
    if outcome.aborted:  # stopped on a prediction; startup: the wall time it did not train (start-up, the stop)
        training = parsed.progress[-1].elapsed if parsed.progress else 0.0
        return ExperimentRecord(status=Status.ABORTED, error=outcome.aborted, **partial,
                                timings=Timings(startup=max(0.0, outcome.wall_seconds - training), training=training,
                                                total=time.perf_counter() - started))
    failure = _training_failure(parsed, outcome, preset, config.limits)
    if failure is not None:
        return ExperimentRecord(status=failure[0], error=failure[1], timings=timings(), **partial)
    if not _has_checkpoint(workspace / "checkpoint"):
        return ExperimentRecord(status=Status.NO_CHECKPOINT, timings=timings(),
                                error="train.py exited without saving a model (it must end with ctx.finish(model, ...))", **partial)

    verdict, eval_seconds = _evaluate(workspace, preset, cache_dir, manifest_path, config, env)
    status, error = Status(verdict["status"]), verdict.get("error", "")
    if verdict.get("imported_candidate_code"):  # its code ran beside the scorer: nothing protects that score
        summary["unenforced"] = ",".join(filter(None, (summary["unenforced"], "score_integrity")))
    if status is Status.OK and _over_budget(parsed, preset):  # a verdict against the model itself comes first
        status, error = Status.OVER_BUDGET, _over_budget(parsed, preset)
    return ExperimentRecord(status=status, val_bpb=verdict.get("val_bpb") if status is Status.OK else None,
                            eval_details=verdict, error=error, timings=timings(eval_seconds), **partial)
