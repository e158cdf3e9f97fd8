"""Where a campaign's events live: the `Store` protocol and the in-memory list.

The durable store (SQLite events table in a run directory) implements the same two methods, so the
loop never knows which one it writes to.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from autoresearch_rl.core.events import Event


@runtime_checkable
class Store(Protocol):
    def append(self, event: Event) -> None:
        """Record one event durably (for a durable store: committed before this returns)."""
        ...

    def events(self) -> Sequence[Event]:
        """Every event, oldest first."""
        ...


class MemoryStore:
    """A list: a simulated campaign needs nothing more."""

    def __init__(self, events: Sequence[Event] = ()) -> None:
        self._events: list[Event] = list(events)

    def append(self, event: Event) -> None:
        self._events.append(event)

    def events(self) -> Sequence[Event]:
        return self._events
