"""A train.py's tunable constants as a discrete space: the language of the simulated campaigns' search agents.

Each constant the file reads becomes a knob with an ordered tuple of choices, its current value
always among them (so the base file is a configuration, the campaign's start): choices as declared,
booleans, the doublings and halvings of a `log-int`, every integer of a short `int` range (an evenly
spaced subset of a long one), and `POINTS` values spaced evenly (multiplicatively for `log`) over
a float range. A configuration becomes code through `apply_params`, like TPE's proposals; one that
breaks a `divides` relation of the file is refused there, so agents test it first (`relations_check`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import libcst as cst

from autoresearch_rl.core.space import Config, DiscreteSpace
from autoresearch_rl.target.knobs import Knob, constraints_hold, discover_knobs
from autoresearch_rl.target.tokens import read_names

POINTS = 7  # choices of a float or long integer range (the current value comes on top when it is not one)


def halvings_and_doublings(value: int, low: float, high: float) -> set[int]:
    """A `log-int` constant's reachable values: its halvings (while even) and doublings that stay in range."""
    options, v = set(), value
    while v >= low and v >= 1:
        options.add(v)
        if v % 2:
            break
        v //= 2
    v = value
    while v <= high:
        options.add(v)
        v *= 2
    return options


def searchable_knobs(base_source: str, device: str | None = None) -> list[Knob]:
    """The constants `base_source` reads, except those declared for other devices than `device`."""
    knobs = discover_knobs(cst.parse_module(base_source))
    reads = read_names(base_source)
    return [k for name, k in knobs.items()
            if name in reads and (device is None or not k.spec.devices or device in k.spec.devices)]


def knob_choices(knob: Knob) -> tuple[Any, ...]:
    """The ordered choices of one constant, its current value included."""
    s, value = knob.spec, knob.value
    if s.kind in ("choice", "bool"):
        options = list(s.choices) + ([value] if value not in s.choices else [])
        return tuple(options)
    assert s.low is not None and s.high is not None
    if s.kind == "log-int":
        return tuple(sorted(halvings_and_doublings(int(value), s.low, s.high) | {int(value)}))
    if s.kind == "int":
        low, high = int(s.low), int(s.high)
        ints = range(low, high + 1) if high - low < 2 * POINTS else \
            sorted({round(low + i * (high - low) / (POINTS - 1)) for i in range(POINTS)})
        return tuple(sorted(set(ints) | {int(value)}))
    if s.kind == "log" and s.low > 0:
        low, high = math.log(s.low), math.log(s.high)
        grid = [math.exp(low + i * (high - low) / (POINTS - 1)) for i in range(POINTS)]
    else:
        grid = [s.low + i * (s.high - s.low) / (POINTS - 1) for i in range(POINTS)]
    floats = {float(f"{g:.4g}") for g in grid} | {value}
    return tuple(sorted(floats))


def train_py_space(base_source: str, device: str | None = None) -> tuple[DiscreteSpace, Config]:
    """The constants `base_source` reads (those worth moving on `device`) as a space, and the base's configuration."""
    wanted = [(k, choices) for k in searchable_knobs(base_source, device) if len(choices := knob_choices(k)) > 1]
    if not wanted:
        raise ValueError("the base train.py has no tunable constants to search")
    space = DiscreteSpace(tuple(k.name for k, _ in wanted), tuple(c for _, c in wanted))
    start = tuple(c.index(k.value) for k, c in wanted)
    return space, start


def config_of(space: DiscreteSpace, params: dict[str, Any]) -> Config | None:
    """The configuration of a `{name: value}` proposal; None when a value is not one of the choices."""
    out = []
    for knob, choices in zip(space.knobs, space.choices):
        if knob not in params or params[knob] not in choices:
            return None
        out.append(choices.index(params[knob]))
    return tuple(out)


def relations_check(base_source: str) -> Callable[[dict[str, Any]], bool]:
    """A test of a `{name: value}` configuration: does it keep every `divides` relation of `base_source`?

    The grid is a product of per-constant choices and knows nothing of relations between constants;
    this is what `apply_params` would refuse, decided without writing any code."""
    knobs = discover_knobs(cst.parse_module(base_source))
    bound = [name for name, k in knobs.items() if k.spec.divides]

    def holds(params: dict[str, Any]) -> bool:
        final = {name: replace(k, value=params.get(name, k.value)) for name, k in knobs.items()}
        return all(constraints_hold(final, name, final[name].value) for name in bound)

    return holds
