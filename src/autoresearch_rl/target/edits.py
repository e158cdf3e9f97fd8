"""Edits of train.py: operators that rewrite the source with libcst, and the Edit they produce.

An operator has a name, a fixed tuple of arguments (so the action space keeps its shape), a
precondition per argument (the action mask), a transform and a one-line description. Hyperparameter
operators are generated for the constants of any train.py; structural ones live in `structural.py`.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import libcst as cst

from autoresearch_rl.target.knobs import Knob, SearchSpec, constant_assignments, discover_knobs

SCALE_FACTORS = ("x0.5", "x0.7", "x0.85", "x1.2", "x1.4", "x2")
SHIFT_STEPS = ("-0.25R", "-0.1R", "+0.1R", "+0.25R")  # fractions of a linear range's width
INT_STEPS = ("-1", "+1")
POW2_STEPS = ("/2", "x2")


class EditError(ValueError):
    """The edit does not apply to this source (masked action, or a source it does not recognise)."""


class Operator(Protocol):
    """A family of code modifications; (operator, arg) is one action."""

    name: str
    kind: str  # "hyperparameter" or "structural"
    args: tuple[str, ...]

    def applicable(self, module: cst.Module, arg: str) -> bool: ...

    def apply(self, module: cst.Module, arg: str) -> tuple[cst.Module, str]:
        """The edited module and a one-line description of the change."""
        ...


@dataclass(frozen=True)
class Edit:
    """One applied action: what changed, why it is called what it is, and the diff."""

    operator: str
    arg: str
    kind: str
    description: str
    before: str
    after: str

    @property
    def diff(self) -> str:
        return unified_diff(self.before, self.after)


def unified_diff(before: str, after: str, name: str = "train.py") -> str:
    lines = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                 fromfile=f"a/{name}", tofile=f"b/{name}", n=2)
    return "".join(lines)


PARSE_CACHE_SIZE = 32  # trees of recent sources (~0.5 MB each); a mask and an apply revisit the incumbent
_trees: OrderedDict[str, cst.Module] = OrderedDict()


def parse_source(source: str) -> cst.Module:
    """The syntax tree of `source`, from a small LRU keyed by the text: trees are immutable, so sharing is safe.

    Masking a source and applying actions to it would otherwise parse the same train.py once per call.
    """
    module = _trees.pop(source, None)
    if module is None:
        module = cst.parse_module(source)
    _remember(source, module)
    return module


def _remember(source: str, module: cst.Module) -> None:
    """Make `module` the most recent tree for `source`; the oldest ones go past PARSE_CACHE_SIZE."""
    _trees.pop(source, None)
    _trees[source] = module
    while len(_trees) > PARSE_CACHE_SIZE:
        _trees.popitem(last=False)


def apply_edit(source: str, operator: Operator, arg: str) -> Edit:
    """Apply (operator, arg) to `source`; EditError when the action is masked here."""
    if arg not in operator.args:
        raise EditError(f"{operator.name} has no argument {arg!r}; choose one of {', '.join(operator.args)}")
    module = parse_source(source)
    if not operator.applicable(module, arg):
        raise EditError(f"{operator.name} {arg} is not applicable to this train.py")
    edited, description = operator.apply(module, arg)
    after = code_after(source, module, edited)
    if isinstance(operator, KnobOperator):
        # one literal swapped for the node the parser would build from its text: the edited tree is the
        # parse of `after` (tests check), so the next step's mask reuses it and keeps the unchanged nodes
        _remember(after, edited)
    return Edit(operator=operator.name, arg=arg, kind=operator.kind, description=description, before=source,
                after=after)


def code_after(source: str, module: cst.Module, edited: cst.Module) -> str:
    """`edited.code`, where `module` is the tree of `source`; a one-statement edit patches the text instead.

    Rendering a whole train.py costs as much as parsing it; a top-level statement renders to exactly its
    span of the module's text, so when it is the only change and its text occurs once, splice the new one in.
    """
    layout = ("header", "footer", "has_trailing_newline", "default_newline", "default_indent")
    same_frame = (len(edited.body) == len(module.body) and module.has_trailing_newline
                  and all(getattr(edited, a) == getattr(module, a) for a in layout))
    changed = [i for i, (a, b) in enumerate(zip(module.body, edited.body)) if a is not b] if same_frame else []
    if len(changed) != 1:
        return edited.code
    old, new = module.code_for_node(module.body[changed[0]]), edited.code_for_node(edited.body[changed[0]])
    at = source.find(old)
    if at < 0 or source.find(old, at + 1) >= 0:  # not exactly one occurrence (overlapping ones included)
        return edited.code
    return source[:at] + new + source[at + len(old):]


# ---- hyperparameter operators ------------------------------------------------------------------


def format_number(value: float | int, like: Any) -> str:
    """A readable literal: ints stay ints; floats get 4 significant digits and keep a decimal point."""
    if isinstance(like, int) and not isinstance(like, bool):
        return str(int(value))
    text = repr(float(f"{value:.4g}"))
    return text


def literal_node(value: Any, quote: str = '"') -> cst.BaseExpression:
    if isinstance(value, bool):
        return cst.Name("True" if value else "False")
    if isinstance(value, str):
        text = repr(value)  # single-quoted unless it holds a single quote
        if quote == '"' and text.startswith("'") and '"' not in value:
            text = f'"{text[1:-1]}"'
        return cst.SimpleString(text)
    text = format_number(value, value)
    node: cst.BaseExpression = cst.Integer(text.lstrip("-")) if isinstance(value, int) else cst.Float(text.lstrip("-"))
    return cst.UnaryOperation(operator=cst.Minus(), expression=node) if text.startswith("-") else node


def replace_constant(module: cst.Module, name: str, value: Any) -> cst.Module:
    """Set module-level constant `name` to `value`, keeping its comment and everything else."""
    for const, statement, old in constant_assignments(module):
        if const == name:
            small = statement.body[0]
            quote = old.quote if isinstance(old, cst.SimpleString) else '"'
            new_small = small.with_changes(value=literal_node(value, quote))
            # constants are top-level statements: rebuild that one line, share every other node
            body = [statement.with_changes(body=[new_small]) if s is statement else s for s in module.body]
            return module.with_changes(body=body)
    raise EditError(f"no constant {name} in this train.py")


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def knobs_of(module: cst.Module) -> Mapping[str, Knob]:
    """discover_knobs, once per tree (trees are immutable and hash by identity); read-only."""
    return MappingProxyType(discover_knobs(module))


@dataclass(frozen=True)
class KnobOperator:
    """Moves one constant: scale (log floats), shift (linear floats), step (ints) or set (choices, booleans)."""

    knob: str
    mode: str  # "scale", "shift", "step", "pow2" or "set"
    args: tuple[str, ...]
    kind: str = "hyperparameter"

    @property
    def name(self) -> str:
        return f"{self.mode}:{self.knob}"

    def target(self, knob: Knob, arg: str) -> Any:
        """The value this action would set, or None when it cannot be computed."""
        v, spec = knob.value, knob.spec
        if self.mode == "set":
            return _parse_choice(arg, spec)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        if self.mode == "scale":
            new = v * float(arg[1:])
            return float(format_number(new, v)) if isinstance(v, float) else None
        if self.mode == "shift":
            assert spec.low is not None and spec.high is not None
            new = v + float(arg[:-1]) * (spec.high - spec.low)
            return float(format_number(new, 1.0))
        if self.mode == "step":
            return int(v) + int(arg)
        if self.mode == "pow2":
            new = v * 2 if arg == "x2" else v / 2
            return int(new) if new == int(new) else None
        return None

    def applicable(self, module: cst.Module, arg: str) -> bool:
        return self.applicable_to(knobs_of(module).get(self.knob), arg)

    def applicable_to(self, knob: Knob | None, arg: str) -> bool:
        """The precondition given the knob as it stands (lets a mask discover knobs once)."""
        if knob is None or arg not in self.args:
            return False
        new = self.target(knob, arg)
        if new is None or new == knob.value or (isinstance(new, float) and not math.isfinite(new)):
            return False
        return knob.spec.contains(new)

    def apply(self, module: cst.Module, arg: str) -> tuple[cst.Module, str]:
        knob = knobs_of(module)[self.knob]
        new = self.target(knob, arg)
        old_text = format_number(knob.value, knob.value) if isinstance(knob.value, (int, float)) and not isinstance(knob.value, bool) else repr(knob.value)
        new_text = repr(new) if isinstance(new, (str, bool)) else format_number(new, knob.value)
        how = "" if self.mode == "set" else f" ({arg})"
        return replace_constant(module, self.knob, new), f"{self.knob} {old_text} -> {new_text}{how}"


def _parse_choice(arg: str, spec: SearchSpec) -> Any:
    for choice in spec.choices:
        if repr(choice) == arg:
            return choice
    return None


def knob_operators(knob: Knob) -> list[KnobOperator]:
    """The operators that move `knob`, with arguments fixed by its spec."""
    spec = knob.spec
    if spec.kind in ("choice", "bool"):
        return [KnobOperator(knob.name, "set", tuple(repr(c) for c in spec.choices))]
    if spec.kind == "log":
        return [KnobOperator(knob.name, "scale", SCALE_FACTORS)]
    if spec.kind == "linear":
        return [KnobOperator(knob.name, "shift", SHIFT_STEPS)]
    if spec.kind == "int":
        return [KnobOperator(knob.name, "step", INT_STEPS)]
    if spec.kind == "log-int":
        return [KnobOperator(knob.name, "pow2", POW2_STEPS)]
    return []


def hyperparameter_operators(source: str) -> list[KnobOperator]:
    """Every hyperparameter operator of a train.py, in the order its constants appear."""
    module = parse_source(source)
    return [op for knob in discover_knobs(module).values() for op in knob_operators(knob)]
