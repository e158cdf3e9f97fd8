"""Run one command in its own process group under a hard wall-clock deadline and resource limits.

The deadline and the limits are enforced from outside: on expiry the whole process group gets
SIGTERM, then SIGKILL after a grace period; on a limit crossing (see `limits.py`) every process of
the candidate gets SIGKILL at once. After a normal exit the rest is killed too, so nothing the
candidate started outlives it, even a process that left the group with setsid(). An optional
monitor (the early-abort rule, selfeval/monitor.py) can stop a run the same way as the deadline.
"""

from __future__ import annotations

import itertools
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autoresearch_rl.runner.limits import Limits, PidsCgroup, TreeWatch, Violation, child_setup, user_task_count

__all__ = ["Limits", "ProcessOutcome", "Violation", "kill_group", "kill_running", "run_with_deadline"]

_POLL_S = 0.05
_cgroup_names = itertools.count()
_running: set[TreeWatch] = set()  # candidates running now, in any thread: `kill_running` stops them all
_running_lock = threading.Lock()


def kill_running() -> int:
    """SIGKILL every candidate process tree this process is running (a controller stopping its worker threads)."""
    with _running_lock:
        watches = list(_running)
    for watch in watches:
        watch.kill_all()
    return len(watches)


@dataclass(frozen=True)
class ProcessOutcome:
    returncode: int | None  # None when killed at the deadline or for a limit before it exited
    timed_out: bool
    wall_seconds: float
    peak_rss_mb: float  # max resident memory of the candidate's process tree (watchdog), or of the direct child
    signal: int | None  # the signal that ended it, when one did
    violation: Violation | None = None  # the resource limit it crossed, when it did
    peak_tasks: int = 0  # most processes + threads seen at once
    aborted: str = ""  # why the monitor stopped it, when it did


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal every process of a group; a group that is already gone is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _nproc_allowance(limits: Limits) -> int | None:
    """RLIMIT_NPROC to set: the user's existing tasks plus the allowance (it counts per user; root is exempt)."""
    if limits.processes is None or os.geteuid() == 0:
        return None
    return user_task_count(os.geteuid()) + limits.processes


def run_with_deadline(argv: list[str], *, cwd: Path, env: dict[str, str], log_path: Path, deadline_s: float,
                      limits: Limits = Limits(), kill_grace_s: float = 2.0,
                      disk_path: Path | None = None, monitor: Callable[[], str | None] | None = None,
                      monitor_every_s: float = 0.5) -> ProcessOutcome:
    """Run argv with stdout+stderr to log_path; kill all of it at the deadline or at a limit crossing.

    `disk_path` is the directory whose size counts against `limits.disk_mb` (the workspace).
    `monitor` is called at most every `monitor_every_s` while the run lives; a non-empty reason from
    it stops the run like the deadline (SIGTERM, grace, SIGKILL) and becomes `ProcessOutcome.aborted`.
    """
    started = time.perf_counter()
    cgroup = None
    if limits.processes is not None:
        cgroup = PidsCgroup.create(limits.processes, f"arl-{os.getpid()}-{next(_cgroup_names)}")
    nproc = _nproc_allowance(limits)
    try:
        with open(log_path, "ab", buffering=0) as log:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=lambda: child_setup(limits, nproc=nproc, cgroup=cgroup))
    except BaseException:
        if cgroup is not None:
            cgroup.kill_and_remove()
        raise
    watch = TreeWatch(proc.pid, limits, disk_path=disk_path, cgroup=cgroup)
    with _running_lock:
        _running.add(watch)
    timed_out, violation, aborted = False, None, ""
    status, rusage = 0, None
    next_sample = next_look = started
    try:
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            now = time.perf_counter()
            if now >= next_sample:
                next_sample = now + limits.poll_s
                violation = watch.sample()
                if violation is not None:
                    watch.kill_all()
                    _, status, rusage = os.wait4(proc.pid, 0)
                    break
            if now - started > deadline_s:
                timed_out = True
                status, rusage = _terminate(proc.pid, kill_grace_s)
                break
            if monitor is not None and now >= next_look:
                next_look = now + monitor_every_s
                aborted = monitor() or ""
                if aborted:
                    status, rusage = _terminate(proc.pid, kill_grace_s)
                    break
            time.sleep(_POLL_S)
    except BaseException:
        watch.kill_all()  # the controller is stopping: leave nothing behind
        raise
    finally:
        proc.returncode = 0  # reaped by wait4 above (or about to be); stop Popen from waiting again
        watch.kill_all()  # stray children, in the group or not
        with _running_lock:
            _running.discard(watch)
    wall = time.perf_counter() - started
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    if code is None and sig is not None:
        code = -sig
    peak = max(watch.peak_memory_mb, rusage.ru_maxrss / 1024 if rusage is not None else 0.0)
    return ProcessOutcome(returncode=None if timed_out or violation or aborted else code, timed_out=timed_out,
                          wall_seconds=wall, peak_rss_mb=peak, signal=sig, violation=violation,
                          peak_tasks=watch.peak_tasks, aborted=aborted)


def _terminate(pid: int, grace_s: float) -> tuple[int, resource.struct_rusage]:
    """SIGTERM the group, SIGKILL it after `grace_s`; returns wait4's status and rusage."""
    kill_group(pid, signal.SIGTERM)
    grace_end = time.perf_counter() + grace_s
    while time.perf_counter() < grace_end:
        reaped, status, rusage = os.wait4(pid, os.WNOHANG)
        if reaped == pid:
            return status, rusage
        time.sleep(_POLL_S)
    kill_group(pid, signal.SIGKILL)
    _, status, rusage = os.wait4(pid, 0)
    return status, rusage
