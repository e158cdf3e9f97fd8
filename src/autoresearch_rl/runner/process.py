"""Run one command in its own process group under a hard wall-clock deadline and OS limits.

The deadline is enforced from outside: on expiry the whole process group gets SIGTERM, then
SIGKILL after a grace period, so nothing the candidate started outlives it. After a normal exit
the group is killed too, which reaps stray children left in it.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
_POLL_S = 0.05


@dataclass(frozen=True)
class Limits:
    """OS resource limits applied to the child (None = leave as inherited)."""

    memory_mb: int | None = None  # RLIMIT_AS: address space; off by default (CUDA maps huge virtual ranges)
    file_size_mb: int | None = 4096  # RLIMIT_FSIZE: no single file larger than this
    open_files: int | None = 4096  # RLIMIT_NOFILE
    core_dumps: bool = False  # RLIMIT_CORE = 0 unless enabled


@dataclass(frozen=True)
class ProcessOutcome:
    returncode: int | None  # None when killed at the deadline before it exited
    timed_out: bool
    wall_seconds: float
    peak_rss_mb: float  # max resident set of the direct child, from wait4
    signal: int | None  # the signal that ended it, when one did


def _die_with_parent() -> None:
    """Linux: SIGKILL the child when the controller dies (even by SIGKILL), so no orphan trains on unseen."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass  # no prctl: the deadline inside the runtime still ends the child


def _apply_limits(limits: Limits) -> None:
    _die_with_parent()

    def set_limit(which: int, value: int) -> None:
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))

    if limits.memory_mb is not None:
        set_limit(resource.RLIMIT_AS, limits.memory_mb * 2**20)
    if limits.file_size_mb is not None:
        set_limit(resource.RLIMIT_FSIZE, limits.file_size_mb * 2**20)
    if limits.open_files is not None:
        set_limit(resource.RLIMIT_NOFILE, limits.open_files)
    if not limits.core_dumps:
        set_limit(resource.RLIMIT_CORE, 0)


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal every process of a group; a group that is already gone is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_with_deadline(argv: list[str], *, cwd: Path, env: dict[str, str], log_path: Path, deadline_s: float,
                      limits: Limits = Limits(), kill_grace_s: float = 2.0) -> ProcessOutcome:
    """Run argv with stdout+stderr to log_path; kill its process group at the deadline."""
    started = time.perf_counter()
    with open(log_path, "ab", buffering=0) as log:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=lambda: _apply_limits(limits))
    pgid = proc.pid  # start_new_session makes the child its group's leader
    timed_out = False
    status, rusage = 0, None
    try:
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.perf_counter() - started > deadline_s:
                timed_out = True
                kill_group(pgid, signal.SIGTERM)
                grace_end = time.perf_counter() + kill_grace_s
                while time.perf_counter() < grace_end:
                    pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
                    if pid == proc.pid:
                        break
                    time.sleep(_POLL_S)
                else:
                    kill_group(pgid, signal.SIGKILL)
                    _, status, rusage = os.wait4(proc.pid, 0)
                break
            time.sleep(_POLL_S)
    except BaseException:
        kill_group(pgid, signal.SIGKILL)  # the controller is stopping: leave nothing behind
        raise
    finally:
        proc.returncode = 0  # reaped by wait4 above; stop Popen from waiting again
        kill_group(pgid, signal.SIGKILL)  # stray children in the group
    wall = time.perf_counter() - started
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    if code is None and sig is not None:
        code = -sig
    peak = rusage.ru_maxrss / 1024 if rusage is not None else 0.0
    return ProcessOutcome(returncode=None if timed_out else code, timed_out=timed_out, wall_seconds=wall,
                          peak_rss_mb=peak, signal=sig)
