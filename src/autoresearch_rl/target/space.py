"""The action space: a stable indexing of (operator, argument) pairs, and a mask for any source.

The indexing is fixed by the source the space was built from (the campaign's first train.py), so
a policy network's output layer keeps its shape while the incumbent changes; the mask says which
actions apply to the incumbent now. A user's own train.py gets the generic hyperparameter
operators; the structural ones join when they recognise the file (our template).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from autoresearch_rl.target.edits import (Edit, EditError, KnobOperator, Operator, apply_edit, hyperparameter_operators,
                                          knobs_of, parse_source)


MASK_CACHE_SIZE = 64  # masks of recent sources, keyed by the text: the incumbent is masked every step


@dataclass(frozen=True)
class Action:
    index: int
    operator: str
    arg: str
    kind: str  # "hyperparameter" or "structural"


def _structural_operators() -> list[Operator]:
    try:
        from autoresearch_rl.target.structural import structural_operators
    except ImportError:  # pragma: no cover - structural operators are optional for the space's contract
        return []
    return list(structural_operators())


class ActionSpace:
    """Every (operator, arg) pair, indexed once; `mask(source)` tells which apply now."""

    def __init__(self, operators: list[Operator]) -> None:
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
    def for_source(cls, source: str) -> ActionSpace:
        """Hyperparameter operators of `source`, plus the structural operators that recognise it."""
        module = parse_source(source)
        operators: list[Operator] = list(hyperparameter_operators(source))
        structural = _structural_operators()
        if any(op.applicable(module, arg) for op in structural for arg in op.args):
            operators += structural
        return cls(operators)

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
        mask = []
        for action in self.actions:
            op = self.operators[action.operator]
            if isinstance(op, KnobOperator):
                mask.append(op.applicable_to(knobs.get(op.knob), action.arg))
            else:
                mask.append(op.applicable(module, action.arg))
        return tuple(mask)

    def apply(self, index: int, source: str) -> Edit:
        action = self.actions[index]
        return apply_edit(source, self.operators[action.operator], action.arg)
