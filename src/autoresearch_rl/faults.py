"""Failpoints: named places where a test can make the controller die with SIGKILL, as a power cut would.

Resume is only as good as its worst-timed kill, so the controller names the moments between its
writes (`faults.point("experiment_finished")`) and the kill-and-resume tests set

    ARL_KILL_AT=experiment_finished:2      # SIGKILL ourselves the 2nd time that point is reached

Unset (always, outside tests) a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "ARL_KILL_AT"
_hits: dict[str, int] = {}


def _targets() -> dict[str, int]:
    spec = os.environ.get(ENV, "")
    targets: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition(":")
        targets[name] = int(count) if count else 1
    return targets


def point(name: str) -> None:
    """Die here (SIGKILL, no cleanup) when ARL_KILL_AT names this point and its hit count is reached."""
    if ENV not in os.environ:
        return
    target = _targets().get(name)
    if target is None:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == target:
        os.kill(os.getpid(), signal.SIGKILL)
