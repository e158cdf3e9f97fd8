"""A pids cgroup per candidate: the kernel refuses forks past `pids.max`, which is what stops a fork bomb.

Available where a pids hierarchy is writable: root on a VM or host (cgroup v1 or v2), or a
delegated cgroup v2 subtree. Containers usually have none; the watchdog (limits.py) stands in.
Cgroups are named `arl-<controller pid>-<n>`, so one left by a killed controller is found and
emptied by the next one.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from pathlib import Path


class PidsCgroup:
    """A fresh cgroup with `pids.max`, nested in the controller's own pids cgroup (v1 or delegated v2)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, max_tasks: int, name: str) -> PidsCgroup | None:
        """None when no writable pids hierarchy exists (containers, unprivileged users without delegation)."""
        parent = _own_pids_cgroup()
        if parent is None:
            return None
        _reap_stale_once()
        path = parent / name
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(max_tasks))
        except OSError:
            try:
                path.rmdir()
            except OSError:
                pass
            return None
        return cls(path)

    def enter(self, pid: int) -> None:
        try:
            (self.path / "cgroup.procs").write_text(str(pid))
        except OSError:
            pass  # the watchdog still counts; nothing to report from inside a preexec_fn

    def members(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def refused_forks(self) -> int:
        """How many forks the kernel refused at pids.max (pids.events `max`)."""
        try:
            for line in (self.path / "pids.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "max":
                    return int(value)
        except (OSError, ValueError):
            pass
        return 0

    def kill_and_remove(self) -> None:
        """SIGKILL every member until none is left (the limit keeps them from multiplying), then remove it."""
        for _ in range(100):
            members = self.members()
            if not members:
                break
            for pid in members:
                _kill(pid)
            time.sleep(0.01)
        try:
            self.path.rmdir()
        except OSError:
            pass


def _own_pids_cgroup() -> Path | None:
    root = Path("/sys/fs/cgroup")
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        rel = rel.lstrip("/")
        if "pids" in controllers.split(","):  # cgroup v1
            path = root / "pids" / rel
            return path if os.access(path, os.W_OK) else None
    for line in lines:
        if line.startswith("0::"):  # cgroup v2: only where pids is delegated to our children
            path = root / line[3:].lstrip("/")
            try:
                delegated = "pids" in (path / "cgroup.subtree_control").read_text().split()
            except OSError:
                return None
            return path if delegated and os.access(path, os.W_OK) else None
    return None


@functools.lru_cache(maxsize=1)
def _reap_stale_once() -> int:
    return reap_stale_cgroups()


def reap_stale_cgroups(prefix: str = "arl-") -> int:
    """Kill what is left in cgroups of controllers that died (named `<prefix><pid>-...`); returns how many."""
    parent = _own_pids_cgroup()
    if parent is None:
        return 0
    reaped = 0
    for path in parent.glob(f"{prefix}*"):
        owner = path.name[len(prefix):].split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            PidsCgroup(path).kill_and_remove()
            reaped += 1
    return reaped




def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
