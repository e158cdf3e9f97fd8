"""Tunable constants of a train.py: module-level UPPER_CASE literals and their `# search:` ranges.

Works on any train.py, not only ours: a constant without an annotation gets a sane default range.
Annotation grammar (the comment after the constant)::

    # search: log 0.005..0.2          positive float, explored multiplicatively
    # search: linear 0.0..0.9         float, explored additively
    # search: int 1..12               integer, steps of 1
    # search: log-int 2..512          integer, doubled or halved
    # search: choice 64, 128, "x"     one of a list (numbers, strings, booleans)

Clauses after a `;` constrain where a value is meaningful (the action mask honours them)::

    # search: choice 0, 4, 8; divides BATCH_SIZE    a value must divide BATCH_SIZE (0 means "unset")
    # search: choice "auto", "never"; device cuda    only worth moving on these devices (masked elsewhere)

A constant that no code of the file reads is never offered: editing it would cost a run and change nothing.
"""

from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass, replace
from collections.abc import Mapping
from typing import Any

import libcst as cst

_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SPEC = re.compile(r"#\s*search:\s*(?P<kind>log-int|log|linear|int|choice)\s+(?P<body>.+?)\s*$")
_CLAUSE = re.compile(r";\s*(?P<key>divides|device)\s+(?P<value>[^;]+?)\s*(?=;|$)")
KINDS = ("log", "linear", "int", "log-int", "choice", "bool")


class AnnotationError(ValueError):
    """A `# search:` comment that cannot be understood; names the constant and the problem."""


@dataclass(frozen=True)
class SearchSpec:
    """Where a constant may go."""

    kind: str  # one of KINDS
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    declared: bool = True  # False when inferred from the value (no annotation)
    divides: str | None = None  # another constant this one's value must divide (0 exempt)
    devices: tuple[str, ...] = ()  # the device types where moving it has an effect; () = everywhere

    def contains(self, value: Any) -> bool:
        if self.kind in ("choice", "bool"):
            return value in self.choices
        assert self.low is not None and self.high is not None
        return self.low - 1e-12 <= value <= self.high + 1e-12


@dataclass(frozen=True)
class Knob:
    """One tunable constant as it stands in a source."""

    name: str
    value: Any  # int, float, bool or str
    spec: SearchSpec

    @property
    def normalised(self) -> float:
        """Position of the value in its range, in [0, 1] (log scale where declared): a policy feature."""
        s = self.spec
        if s.kind in ("choice", "bool"):
            return s.choices.index(self.value) / max(1, len(s.choices) - 1) if self.value in s.choices else 0.0
        assert s.low is not None and s.high is not None
        if s.kind in ("log", "log-int") and s.low > 0 and self.value > 0:
            span = math.log(s.high) - math.log(s.low)
            return (math.log(self.value) - math.log(s.low)) / span if span else 0.0
        span = s.high - s.low
        return (self.value - s.low) / span if span else 0.0


def parse_spec(name: str, comment: str | None, value: Any) -> SearchSpec | None:
    """The declared spec, an inferred default, or None when the constant is not tunable (e.g. a bare string)."""
    match = _SPEC.search(comment or "")
    if match is None:
        return _default_spec(value)
    kind, body = match.group("kind"), match.group("body")
    body, clauses = _split_clauses(name, body)
    spec = _parse_range(name, kind, body)
    return replace(spec, **clauses) if clauses else spec


def _split_clauses(name: str, body: str) -> tuple[str, dict[str, Any]]:
    """The range text and its `; divides X` / `; device a, b` clauses."""
    first = _CLAUSE.search(body)
    if first is None:
        if ";" in body:
            raise AnnotationError(f"{name}: unknown clause {body[body.index(';'):]!r} (expected '; divides NAME' "
                                  "or '; device cuda')")
        return body, {}
    clauses: dict[str, Any] = {}
    rest = body[first.start():]
    for match in _CLAUSE.finditer(rest):
        value = match.group("value").strip()
        if match.group("key") == "divides":
            if not _NAME.match(value):
                raise AnnotationError(f"{name}: 'divides' needs an UPPER_CASE constant name, got {value!r}")
            clauses["divides"] = value
        else:
            clauses["devices"] = tuple(d.strip() for d in value.split(",") if d.strip())
    if _CLAUSE.sub("", rest).strip():
        raise AnnotationError(f"{name}: cannot read clause {rest!r} (expected '; divides NAME' or '; device cuda')")
    return body[:first.start()].strip(), clauses


def _parse_range(name: str, kind: str, body: str) -> SearchSpec:
    if kind == "choice":
        try:
            choices = tuple(ast.literal_eval(f"({body},)"))
        except (ValueError, SyntaxError) as exc:
            raise AnnotationError(f"{name}: cannot read choices {body!r} ({exc})") from None
        if len(choices) < 2:
            raise AnnotationError(f"{name}: a choice needs at least two options")
        return SearchSpec(kind="choice", choices=choices)
    parts = body.split("..")
    try:
        low, high = float(parts[0]), float(parts[1])
    except (ValueError, IndexError):
        raise AnnotationError(f"{name}: expected 'LOW..HIGH' after {kind!r}, got {body!r}") from None
    if low > high or (kind in ("log", "log-int") and low <= 0):
        raise AnnotationError(f"{name}: invalid {kind} range {low}..{high}")
    return SearchSpec(kind=kind, low=low, high=high)


def _default_spec(value: Any) -> SearchSpec | None:
    if isinstance(value, bool):
        return SearchSpec(kind="bool", choices=(False, True), declared=False)
    if isinstance(value, int):
        if value >= 2 and value & (value - 1) == 0:
            return SearchSpec(kind="log-int", low=max(1, value // 8), high=value * 8, declared=False)
        return SearchSpec(kind="int", low=0 if value <= 0 else 1, high=max(4, 4 * value), declared=False)
    if isinstance(value, float):
        if value > 0:
            return SearchSpec(kind="log", low=value / 10, high=value * 10, declared=False)
        return SearchSpec(kind="linear", low=min(value, 0.0), high=max(value, 0.0) + 1.0, declared=False)
    return None


def literal_value(node: cst.BaseExpression) -> tuple[bool, Any]:
    """(True, value) for int/float/bool/str literals (and negated numbers); (False, None) otherwise."""
    if isinstance(node, (cst.Integer, cst.Float, cst.SimpleString)):
        return True, node.evaluated_value
    if isinstance(node, cst.Name) and node.value in ("True", "False"):
        return True, node.value == "True"
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        ok, inner = literal_value(node.expression)
        if ok and isinstance(inner, (int, float)) and not isinstance(inner, bool):
            return True, -inner
    return False, None


def constant_assignments(module: cst.Module) -> list[tuple[str, cst.SimpleStatementLine, cst.BaseExpression]]:
    """(name, statement, value node) of every module-level `UPPER = literal` assignment."""
    found = []
    for statement in module.body:
        if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
            continue
        small = statement.body[0]
        if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
            name, value = small.targets[0].target.value, small.value
        elif isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name) and small.value is not None:
            name, value = small.target.value, small.value
        else:
            continue
        if _NAME.match(name) and literal_value(value)[0]:
            found.append((name, statement, value))
    return found


def discover_knobs(module: cst.Module) -> dict[str, Knob]:
    """Every tunable constant of the module, in source order."""
    knobs: dict[str, Knob] = {}
    for name, statement, node in constant_assignments(module):
        _, value = literal_value(node)
        comment = statement.trailing_whitespace.comment
        spec = parse_spec(name, comment.value if comment else None, value)
        if spec is not None:
            knobs[name] = Knob(name=name, value=value, spec=spec)
    return knobs


def constraints_hold(knobs: Mapping[str, Knob], name: str, value: Any) -> bool:
    """Would setting `name` to `value` keep every `divides` relation of the file true?"""
    def divides(small: Any, big: Any) -> bool:
        return isinstance(small, int) and isinstance(big, int) and (small == 0 or (big > 0 and big % small == 0))

    knob = knobs.get(name)
    if knob is not None and knob.spec.divides and knob.spec.divides in knobs:
        if not divides(value, knobs[knob.spec.divides].value):
            return False
    for other in knobs.values():
        if other.spec.divides == name and not divides(other.value, value):
            return False
    return True
