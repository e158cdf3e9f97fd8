"""A train.py's tunable constants and structural variants as a discrete space: the language of the
simulated campaigns' search agents.

Each constant the file reads becomes a knob with an ordered tuple of choices, its current value
always among them (so the base file is a configuration, the campaign's start): choices as declared,
booleans, the doublings and halvings of a `log-int`, every integer of a short `int` range (an evenly
spaced subset of a long one), and `POINTS` values spaced evenly (multiplicatively for `log`) over
a float range. Each structural operator that recognises the file (activation, QK-norm, softcap, ...)
becomes a knob `@name` whose choices are its variants that apply to the base. A configuration
becomes code through `apply_params`, like TPE's proposals. What the product of choices cannot know,
`Runnable` tells before anything runs: a configuration that breaks a `divides` relation, variants
that do not compose, or one that differs from a measured configuration only in constants without
effect in its variants is refused, so an agent never spends an iteration on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import libcst as cst

from autoresearch_rl.core.space import Config, DiscreteSpace
from autoresearch_rl.target.edits import EditError
from autoresearch_rl.target.knobs import Knob, constraints_hold, discover_knobs
from autoresearch_rl.target.params import STRUCTURAL, apply_params
from autoresearch_rl.target.space import effective_reads
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


def structural_knobs(base_source: str) -> list[tuple[str, tuple[str, ...], str]]:
    """(`@name`, variants, the base's variant) of every structural operator that recognises `base_source`."""
    from autoresearch_rl.target.structural import structural_operators

    module = cst.parse_module(base_source)
    out = []
    for op in structural_operators():
        current = op.current(module)
        if current is None:
            continue
        variants = tuple(a for a in op.args if a == current or op.applicable(module, a))
        if len(variants) > 1:
            out.append((STRUCTURAL + op.name, variants, current))
    return out


def train_py_space(base_source: str, device: str | None = None) -> tuple[DiscreteSpace, Config]:
    """The constants `base_source` reads (those worth moving on `device`) and the structural variants that
    apply to it, as a space; and the base's configuration."""
    wanted = [(k.name, choices, k.value) for k in searchable_knobs(base_source, device)
              if len(choices := knob_choices(k)) > 1]
    wanted += structural_knobs(base_source)
    if not wanted:
        raise ValueError("the base train.py has no tunable constants to search")
    space = DiscreteSpace(tuple(name for name, _, _ in wanted), tuple(c for _, c, _ in wanted))
    start = tuple(c.index(value) for _, c, value in wanted)
    return space, start


def config_of(space: DiscreteSpace, params: dict[str, Any], start: Config | None = None) -> Config | None:
    """The configuration of a `{name: value}` proposal (a knob it does not name keeps `start`'s choice, when
    given); None when a value is not one of the choices."""
    out = []
    for k, (knob, choices) in enumerate(zip(space.knobs, space.choices)):
        if knob not in params and start is not None:
            out.append(start[k])
        elif knob not in params or params[knob] not in choices:
            return None
        else:
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


class Runnable:
    """Which configurations of `space` would run as new code: the test an agent applies before proposing.

    Relations are checked first; then the configuration's structural variants (do they compose, and
    which constants still have an effect in them: LOGIT_SOFTCAP has none once the softcap is gone),
    written once per combination of variants. A configuration that equals one already measured once
    every constant without effect is set back to the base would only re-measure that code."""

    def __init__(self, base_source: str, space: DiscreteSpace, start: Config) -> None:
        self.base_source, self.space, self.start = base_source, space, start
        self.relations_hold = relations_check(base_source)
        self.structural = [k for k, name in enumerate(space.knobs) if name.startswith(STRUCTURAL)]
        self._effect: dict[tuple[int, ...], frozenset[int] | None] = {}  # variants -> knobs with an effect

    def _knobs_with_effect(self, config: Config) -> frozenset[int] | None:
        """The knobs that change the code in this configuration's variants (None: the variants do not compose)."""
        variants = tuple(config[k] for k in self.structural)
        if variants not in self._effect:
            structure = {self.space.knobs[k]: self.space.choices[k][config[k]] for k in self.structural}
            try:
                code = apply_params(self.base_source, structure)[0]
                reads = effective_reads(code, cst.parse_module(code))
                self._effect[variants] = frozenset(k for k, name in enumerate(self.space.knobs)
                                                   if name.startswith(STRUCTURAL) or name in reads)
            except EditError:
                self._effect[variants] = None
        return self._effect[variants]

    def effective(self, config: Config) -> Config | None:
        """`config` with every constant that has no effect in it set back to the base's value."""
        effect = self._knobs_with_effect(config)
        if effect is None:
            return None
        return tuple(v if k in effect else self.start[k] for k, v in enumerate(config))

    def refusal(self, config: Config, measured: Iterable[Config]) -> str:
        """Why `config` would not run as new code ("" when it would)."""
        if not self.relations_hold(self.space.values(config)):
            return "breaks a 'divides' relation"
        key = self.effective(config)
        if key is None:
            return "its structural variants do not compose"
        if any(self.effective(m) == key for m in measured if m != config):
            return "no different from a measured configuration (it moves only constants without effect in its code)"
        return ""
