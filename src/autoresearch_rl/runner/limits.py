"""Resource limits of one candidate, in three layers, because no single one works everywhere.

1. OS rlimits, set in the child before exec: open files, file size, core dumps, optionally address
   space, and processes. RLIMIT_NPROC counts every task of the user and is never enforced for root,
   so it is set to (tasks the user already has + the allowance) and only when not root.
2. A pids cgroup with `pids.max` where a cgroup hierarchy is writable (cgroup.py): the kernel
   refuses the fork, which is what actually stops a fork bomb.
3. A watchdog that samples the candidate's process tree (processes and threads, resident memory)
   and its workspace's disk use, and reports the first limit crossed. It works everywhere, reacts
   within one poll interval, and remembers every process it saw so that a kill reaches the ones
   that left the process group.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from autoresearch_rl.runner.cgroup import PidsCgroup

_PR_SET_PDEATHSIG = 1  # prctl options (linux/prctl.h)
_PR_SET_CHILD_SUBREAPER = 36


def _three_quarters_of_ram() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 3 / 4 / 2**20)
    except (ValueError, OSError, AttributeError):
        return None


@dataclass(frozen=True)
class Limits:
    """What one candidate may use (None = no limit). A crossing kills its process tree: RESOURCE_LIMIT."""

    memory_mb: int | None = field(default_factory=_three_quarters_of_ram)  # resident memory of the whole tree (watchdog)
    processes: int | None = 2048  # tasks (processes + threads) of the tree: pids cgroup, RLIMIT_NPROC, watchdog
    disk_mb: int | None = 20_480  # bytes on disk under the workspace (watchdog)
    file_size_mb: int | None = 4096  # RLIMIT_FSIZE: no single file larger than this (SIGXFSZ)
    open_files: int | None = 4096  # RLIMIT_NOFILE
    address_space_mb: int | None = None  # RLIMIT_AS per process; off by default (CUDA maps huge virtual ranges)
    core_dumps: bool = False  # RLIMIT_CORE = 0 unless enabled
    poll_s: float = 0.2  # watchdog interval: how late a memory, process or disk crossing can be noticed


@dataclass(frozen=True)
class Violation:
    """The first limit a candidate crossed."""

    limit: str  # "memory", "processes" or "disk": the limits only the watchdog can see crossed
    detail: str  # one line for the record's error


# ---- layer 1: rlimits and process attributes, applied in the child before exec ----------------------

def user_task_count(uid: int) -> int:
    """Processes and threads owned by `uid` right now (what RLIMIT_NPROC counts)."""
    count = 0
    for pid in _pids():
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                count += int(_read_stat(pid)[17])  # num_threads
        except (OSError, IndexError, ValueError):
            continue
    return count


def child_setup(limits: Limits, *, nproc: int | None, cgroup: PidsCgroup | None) -> None:
    """Runs in the forked child (preexec_fn): die with the controller, adopt orphans, join the cgroup, set rlimits."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # no orphan trains on unseen after a controller crash
            libc.prctl(_PR_SET_CHILD_SUBREAPER, 1)  # double-forked grandchildren stay in our tree while we live
        except (OSError, AttributeError):
            pass
    if cgroup is not None:
        cgroup.enter(os.getpid())

    def set_limit(which: int, value: int) -> None:
        _, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))

    if limits.address_space_mb is not None:
        set_limit(resource.RLIMIT_AS, limits.address_space_mb * 2**20)
    if limits.file_size_mb is not None:
        set_limit(resource.RLIMIT_FSIZE, limits.file_size_mb * 2**20)
    if limits.open_files is not None:
        set_limit(resource.RLIMIT_NOFILE, limits.open_files)
    if nproc is not None:
        set_limit(resource.RLIMIT_NPROC, nproc)
    if not limits.core_dumps:
        set_limit(resource.RLIMIT_CORE, 0)


# ---- layer 3: the watchdog ---------------------------------------------------------------------------

class TreeWatch:
    """Samples one candidate: its process tree, memory and workspace; kills all of it on request."""

    def __init__(self, root_pid: int, limits: Limits, *, disk_path: Path | None = None,
                 cgroup: PidsCgroup | None = None) -> None:
        self.root_pid = root_pid
        self.limits = limits
        self.disk_path = disk_path
        self.cgroup = cgroup
        self.seen: dict[int, str] = {root_pid: _start_time(root_pid)}  # pid -> start time (guards pid reuse)
        self.namespaces: set[str] = set()  # mount/network namespaces of the sandbox (not the controller's)
        self.peak_memory_mb = 0.0
        self.peak_tasks = 0
        self.peak_disk_mb = 0.0

    def sample(self) -> Violation | None:
        """One look at the tree; the first limit crossed, or None."""
        members = self._members()
        tasks, memory_mb = 0, 0.0
        for pid in members:
            threads, rss = _tasks_and_memory(pid)
            tasks += threads
            memory_mb += rss
        self.peak_tasks = max(self.peak_tasks, tasks)
        self.peak_memory_mb = max(self.peak_memory_mb, memory_mb)
        lim = self.limits
        if self.cgroup is not None and self.cgroup.refused_forks() > 0:
            return Violation("processes", f"process limit: the kernel refused to fork past {lim.processes} tasks")
        if lim.processes is not None and tasks >= lim.processes:
            return Violation("processes", f"process limit: {tasks} processes and threads >= {lim.processes}")
        if lim.memory_mb is not None and memory_mb > lim.memory_mb:
            return Violation("memory", f"memory limit: resident memory {memory_mb:.0f} MB > {lim.memory_mb} MB")
        if self.disk_path is not None and lim.disk_mb is not None:
            disk_mb = _disk_usage(self.disk_path) / 2**20
            self.peak_disk_mb = max(self.peak_disk_mb, disk_mb)
            if disk_mb > lim.disk_mb:
                return Violation("disk", f"disk limit: workspace holds {disk_mb:.0f} MB > {lim.disk_mb} MB")
        return None

    def _members(self) -> list[int]:
        """Live processes of the candidate: the cgroup's, or its tree, session and sandbox namespaces."""
        if self.cgroup is not None:
            for pid in self.cgroup.members():
                self.seen.setdefault(pid, _start_time(pid))
            return self.cgroup.members()
        self._scan()
        return [pid for pid, started in self.seen.items() if started and _start_time(pid) == started]

    def _scan(self) -> None:
        found = _descendants(self.root_pid, self.seen, self.namespaces)
        self.seen.update(found)
        for pid in found:  # a sandbox's namespaces cannot be left without privileges: membership sticks
            self.namespaces.update(ns for ns in _namespaces(pid) if ns not in _OWN_NAMESPACES)

    def kill_all(self) -> None:
        """SIGKILL the process group, every process ever seen (unless its pid was reused) and the cgroup."""
        _killpg(self.root_pid)
        for _ in range(3):  # a process forking while we kill: look again
            self._scan()
            for pid, started in list(self.seen.items()):
                if started and _start_time(pid) == started:
                    _kill(pid)
        if self.cgroup is not None:
            self.cgroup.kill_and_remove()


def _pids() -> Iterable[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _read_stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state, 1 = ppid, 3 = session)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read().decode("ascii", "replace")
    return data.rsplit(")", 1)[1].split()


def _start_time(pid: int) -> str:
    try:
        return _read_stat(pid)[19]
    except (OSError, IndexError):
        return ""


def _namespaces(pid: int) -> list[str]:
    found = []
    for kind in _NS_KINDS:
        try:
            found.append(os.readlink(f"/proc/{pid}/ns/{kind}"))
        except OSError:
            pass
    return found


_NS_KINDS = ("mnt", "net")
_OWN_NAMESPACES = frozenset(_namespaces(os.getpid()))


def _descendants(root: int, seen: dict[int, str], namespaces: set[str]) -> dict[int, str]:
    """Live processes (pid -> start time) of the candidate: descendants of `root` or of a process seen
    before (while its start time matches: pids are reused), its session, and the sandbox's namespaces."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    roots = [root]
    for pid in _pids():
        try:
            fields = _read_stat(pid)
        except (OSError, IndexError):
            continue
        if fields[0] in ("Z", "X"):
            continue
        started[pid] = fields[19]
        children.setdefault(int(fields[1]), []).append(pid)
        if int(fields[3]) == root or seen.get(pid) == fields[19]:
            roots.append(pid)
        elif namespaces and not namespaces.isdisjoint(_namespaces(pid)):
            roots.append(pid)
    found: dict[int, str] = {}
    stack = roots
    while stack:
        pid = stack.pop()
        if pid in found or pid not in started:
            continue
        found[pid] = started[pid]
        stack.extend(children.get(pid, ()))
    return found


def _tasks_and_memory(pid: int) -> tuple[int, float]:
    """(threads, resident anonymous + shared-memory MB) of one process; (0, 0) when it is gone."""
    threads, kb = 0, 0
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Threads:"):
                    threads = int(line.split()[1])
                elif line.startswith((b"RssAnon:", b"RssShmem:")):
                    kb += int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0, 0.0
    return threads, kb / 1024


def _disk_usage(path: Path) -> int:
    """Allocated bytes under `path` (not following links); files vanishing meanwhile are skipped."""
    total, stack = 0, [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass

