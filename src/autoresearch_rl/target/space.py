"""The action space: a stable indexing of (operator, argument) pairs, and a mask for any source.

The indexing is fixed by the source the space was built from (the campaign's first train.py), so
a policy network's output layer keeps its shape while the incumbent changes; the mask says which
actions apply to the incumbent now. A user's own train.py gets the generic hyperparameter
operators; the structural ones join when they recognise the file (our template).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import libcst as cst

from autoresearch_rl.target.edits import (Edit, EditError, KnobOperator, Operator, apply_edit, hyperparameter_operators,
                                          knobs_of, parse_source)
from autoresearch_rl.target.knobs import Knob, constraints_hold
from autoresearch_rl.target.tokens import read_names


MASK_CACHE_SIZE = 64  # masks of recent sources, keyed by the text: the incumbent is masked every step


@dataclass(frozen=True)
class Action:
    index: int
    operator: str
    arg: str
    kind: str  # "hyperparameter" or "structural"


def effective_reads(source: str, module: cst.Module) -> frozenset[str]:
    """The names `source` reads, less the constants its structural variants leave without effect."""
    try:
        from autoresearch_rl.target.structural import inert_constants
    except ImportError:  # pragma: no cover - structural operators are optional for the space's contract
        return read_names(source)
    return read_names(source) - inert_constants(module)


def _structural_operators() -> list[Operator]:
    try:
        from autoresearch_rl.target.structural import structural_operators
    except ImportError:  # pragma: no cover - structural operators are optional for the space's contract
        return []
    return list(structural_operators())


class ActionSpace:
    """Every (operator, arg) pair, indexed once; `mask(source)` tells which apply now.

    No free lunches: an edit of a constant no code reads, a value that breaks a `divides` relation, or
    a knob declared for other devices than `device` (None: any) is masked, so it is never run.
    """

    def __init__(self, operators: list[Operator], device: str | None = None) -> None:
        self.device = device
        self.operators = {op.name: op for op in operators}
        if len(self.operators) != len(operators):
            raise ValueError("operator names must be unique")
        self.actions: list[Action] = []
        for op in operators:
            for arg in op.args:
                self.actions.append(Action(len(self.actions), op.name, arg, op.kind))
        self._index = {(a.operator, a.arg): a.index for a in self.actions}
        self._masks: OrderedDict[str, tuple[bool, ...]] = OrderedDict()  # by source text, most recent last

    @classmethod
    def for_source(cls, source: str, device: str | None = None) -> ActionSpace:
        """Hyperparameter operators of `source`, plus the structural operators that recognise it.

        `device` ("cpu", "cuda") is where the candidates will train; knobs declared for other devices are masked.
        """
        module = parse_source(source)
        operators: list[Operator] = list(hyperparameter_operators(source))
        structural = _structural_operators()
        if any(op.applicable(module, arg) for op in structural for arg in op.args):
            operators += structural
        return cls(operators, device=device)

    def __len__(self) -> int:
        return len(self.actions)

    def index(self, operator: str, arg: str) -> int:
        try:
            return self._index[(operator, arg)]
        except KeyError:
            raise EditError(f"no action {operator} {arg} in this space") from None

    def mask(self, source: str) -> list[bool]:
        """True where the action applies to `source` (remembered for the last MASK_CACHE_SIZE sources)."""
        mask = self._masks.pop(source, None)
        if mask is None:
            mask = self._compute_mask(source)
        self._masks[source] = mask
        while len(self._masks) > MASK_CACHE_SIZE:
            self._masks.popitem(last=False)
        return list(mask)

    def _compute_mask(self, source: str) -> tuple[bool, ...]:
        module = parse_source(source)
        knobs = knobs_of(module)
        reads = effective_reads(source, module)
        mask = []
        for action in self.actions:
            op = self.operators[action.operator]
            if isinstance(op, KnobOperator):
                mask.append(op.applicable_to(knobs.get(op.knob), action.arg)
                            and not self.pointless(op, knobs, reads, action.arg))
            else:
                mask.append(op.applicable(module, action.arg))
        return tuple(mask)

    def pointless(self, op: KnobOperator, knobs: Mapping[str, Knob], reads: frozenset[str], arg: str) -> str:
        """Why moving this knob this way cannot be research here ("" when it can)."""
        knob = knobs.get(op.knob)
        if knob is None:
            return ""
        if op.knob not in reads:
            return f"{op.knob} is never read by this train.py, or has no effect in its variants: editing it would change nothing"
        if knob.spec.devices and self.device is not None and self.device not in knob.spec.devices:
            return f"{op.knob} only has an effect on {', '.join(knob.spec.devices)}, and candidates run on {self.device}"
        if not constraints_hold(knobs, op.knob, op.target(knob, arg)):
            return f"{op.knob} -> {arg} breaks a 'divides' relation of this train.py"
        return ""

    def apply(self, index: int, source: str) -> Edit:
        action = self.actions[index]
        op = self.operators[action.operator]
        if isinstance(op, KnobOperator):
            module = parse_source(source)
            why = self.pointless(op, knobs_of(module), effective_reads(source, module), action.arg)
            if why:
                raise EditError(why)
        return apply_edit(source, op, action.arg)
