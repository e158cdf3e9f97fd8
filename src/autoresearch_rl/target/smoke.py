"""Cheap validation of an edited train.py before it spends a budget: compile, then one tiny step.

The candidate runs with ARL_SMOKE=1: the frozen runtime hands it sequences of 32 random tokens,
stops its budget after one optimizer step, and replaces the checkpoint export with a forward
check (shape and finiteness of the logits). Shape errors, bad optimizer wiring and broken
imports cost seconds and become INVALID_EDIT records instead of failed experiments.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path

from autoresearch_rl.env.presets import DEFAULT_PRESET
from autoresearch_rl.logparse import parse_log
from autoresearch_rl.runner import sandbox as sb
from autoresearch_rl.runner.runner import PACKAGE_ROOT, RunnerConfig, compile_error, run_candidate

SMOKE_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SmokeResult:
    ok: bool
    error: str  # one line: why it failed
    seconds: float


def _smoke_env(preset: str, workdir: Path) -> dict[str, str]:
    return {"ARL_SMOKE": "1", "ARL_DEVICE": "cpu", "ARL_PRESET": preset, "ARL_SEED": "0",
            "ARL_CHECKPOINT_DIR": str(workdir / "checkpoint")}


def smoke_check(source: str, preset: str = DEFAULT_PRESET, *, in_process: bool = False,
                timeout_s: float = SMOKE_TIMEOUT_S, sandbox: str = "auto") -> SmokeResult:
    """Compile `source` and run one tiny training step; `in_process` trades isolation for speed (tests).

    The subprocess runs in the same sandbox as a training run (`sandbox`: see runner/sandbox.py) with
    only its temporary directory writable: a candidate's code is untrusted from its first line.
    """
    started = time.perf_counter()
    error = compile_error(source)
    if not error:
        error = _run_in_process(source, preset) if in_process else _run_subprocess(source, preset, timeout_s, sandbox)
    return SmokeResult(ok=not error, error=error, seconds=time.perf_counter() - started)


def _run_subprocess(source: str, preset: str, timeout_s: float, sandbox: str) -> str:
    with tempfile.TemporaryDirectory(prefix="arl-smoke-") as tmp:
        workdir = Path(tmp)
        (workdir / "train.py").write_text(source)
        env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR", "ARL_THREADS") if k in os.environ}
        env.update(_smoke_env(preset, workdir), PYTHONPATH=PACKAGE_ROOT, PYTHONUNBUFFERED="1")
        # random tokens only: no data to show; home hidden, nothing writable but the temporary directory
        confinement = sb.smoke_confinement(workdir, Path(PACKAGE_ROOT))
        outcome, _ = run_candidate([sys.executable, "train.py"], workspace=workdir, env=env, confinement=confinement,
                                   config=RunnerConfig(sandbox=sandbox), log_path=workdir / "smoke.log",
                                   deadline_s=timeout_s)
        parsed = parse_log(workdir / "smoke.log", tail_lines=5)
        if outcome.timed_out:
            return f"smoke check timed out after {timeout_s:.0f} s"
        if outcome.returncode != 0:
            return parsed.last_exception or f"smoke check exited with code {outcome.returncode}"
        if parsed.summary.get("smoke") != "ok":
            return "smoke check finished without reaching ctx.finish(model, ...)"
        return ""


def _run_in_process(source: str, preset: str) -> str:
    with tempfile.TemporaryDirectory(prefix="arl-smoke-") as tmp:
        saved = {k: os.environ.get(k) for k in _smoke_env(preset, Path(tmp))}
        os.environ.update(_smoke_env(preset, Path(tmp)))
        name = f"_arl_smoke_{id(source)}"
        module = types.ModuleType("__main__")
        module.__file__ = str(Path(tmp) / "train.py")
        sys.modules[name] = module
        module.__dict__["__name__"] = "__main__"
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(source, "train.py", "exec"), module.__dict__)
        except SystemExit as exc:
            if exc.code not in (0, None):
                return f"smoke check exited with code {exc.code}"
        except Exception as exc:  # noqa: BLE001 - the candidate's failure, reported as data
            return f"{type(exc).__name__}: {exc}"[:500]
        finally:
            sys.modules.pop(name, None)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        if "smoke: ok" not in out.getvalue():
            return "smoke check finished without reaching ctx.finish(model, ...)"
        return ""
