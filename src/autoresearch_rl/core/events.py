"""Every fact of a campaign as a frozen, versioned event; the log of them is the campaign.

One class per fact. `to_json`/`from_json` give a versioned, typed JSON form (a store of another
version is refused by name, never misread). Configurations are tuples of choice indices.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Union

from autoresearch_rl.core.space import Config

EVENT_VERSION = 1


class EventVersionError(ValueError):
    """A stored event written by another version of the event schema."""


@dataclass(frozen=True)
class CampaignStarted:
    task: str  # landscape or preset name
    seed: int  # campaign seed: noise stream, proposer randomness
    start: Config  # the starting incumbent
    calibration_runs: int  # measurements of the start that calibrate the noise
    settings: dict[str, Any] = field(default_factory=dict)  # keep rule, budgets, agent: as JSON


@dataclass(frozen=True)
class Proposed:
    exp: int  # experiment id (0-based, in order of proposal)
    config: Config
    kind: str  # "calibration" | "edit" | "confirm" | "remeasure"
    parent: int | None  # edit: the incumbent's exp id; confirm: the candidate's; remeasure: the incumbent's
    info: dict[str, Any] = field(default_factory=dict)  # what the proposer saw and chose (features, log-prob)


@dataclass(frozen=True)
class Scored:
    exp: int
    value: float  # one measurement, lower is better
    cost_s: float = 0.0  # what the run cost (simulated or wall seconds)
    throughput: float | None = None  # how fast the machine trained it (tokens/s): the drift monitor's signal
    details: dict[str, Any] = field(default_factory=dict)  # the run's record, when real: loss curve, checks, logs


@dataclass(frozen=True)
class Crashed:
    exp: int
    reason: str
    cost_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)  # the run's record, when there is one


@dataclass(frozen=True)
class Aborted:
    exp: int
    reason: str
    predicted: float | None = None  # the value the pruner predicted from the partial curve
    cost_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)  # the run's record: where it stopped, on what evidence


@dataclass(frozen=True)
class Calibrated:
    sigma: float  # seed noise of one measurement
    baseline: float  # mean of the calibration runs: the start incumbent's value


@dataclass(frozen=True)
class Decided:
    exp: int  # the candidate decided
    verdict: str  # "kept" | "discarded" | "confirm" | "deferred" | "failed" | "measured"
    margin: float  # the improvement the rule required (value units)
    reward: float  # what the proposer is told (sigma units, clipped)


@dataclass(frozen=True)
class Rebased:
    """The machine changed (throughput moved beyond the tolerance, on the incumbent too): from experiment
    `from_exp` on, measurements are compared only with each other, and `throughput` is the new reference."""

    from_exp: int
    throughput: float
    reason: str


@dataclass(frozen=True)
class PolicyUpdated:
    version: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Stopped:
    rule: str
    reason: str


@dataclass(frozen=True)
class Resumed:
    """A stopped campaign goes on: reopened with a stopper that no longer says stop (a larger budget)."""

    after: str  # the rule that had stopped it


Event = Union[CampaignStarted, Proposed, Scored, Crashed, Aborted, Calibrated, Decided, Rebased, PolicyUpdated,
              Stopped, Resumed]
EVENT_TYPES: dict[str, type] = {cls.__name__: cls for cls in
                                (CampaignStarted, Proposed, Scored, Crashed, Aborted, Calibrated, Decided, Rebased,
                                 PolicyUpdated, Stopped, Resumed)}
_TUPLE_FIELDS = {"start", "config"}


def to_json(event: Event) -> str:
    payload = asdict(event)
    return json.dumps({"v": EVENT_VERSION, "type": type(event).__name__, **payload}, sort_keys=True,
                      separators=(",", ":"))


def from_json(text: str) -> Event:
    data = json.loads(text)
    version = data.pop("v", None)
    if version != EVENT_VERSION:
        raise EventVersionError(f"event schema version {version!r} is not {EVENT_VERSION}: written by another "
                                "version of autoresearch-rl")
    cls = EVENT_TYPES.get(data.pop("type", None))
    if cls is None:
        raise EventVersionError(f"unknown event type in {text[:80]!r}")
    names = {f.name for f in fields(cls)}
    optional = {f.name for f in fields(cls) if f.default is not MISSING or f.default_factory is not MISSING}
    if not set(data) <= names or not names - optional <= set(data):  # a field added with a default may be absent
        raise EventVersionError(f"{cls.__name__} fields {sorted(data)} differ from {sorted(names)}")
    for key in _TUPLE_FIELDS & names:
        data[key] = tuple(data[key])
    return cls(**data)
