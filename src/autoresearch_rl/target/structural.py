"""Structural edits of train.py: architecture, optimiser and schedule, rewritten with libcst.

An operator recognises which variant a piece of code is by comparing syntax trees with canonical
snippets (comments, layout and docstrings ignored), then splices in another variant's canonical code.
A feature that is one statement of a shared method (QK-norm, weight tying) is inserted or removed
beside an anchor statement, so operators that touch the same method compose. Where the anchors are
missing (a user's own train.py) or the code has a shape no variant matches, the action is masked.
The reading and splicing helpers live in `splice.py`; this module holds what every operator shares and the
registry; the operators and their snippets are in `structural_layers.py` (inside the layers) and
`structural_params.py` (parameters and their optimisation).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import libcst as cst

from autoresearch_rl.target.edits import EditError, Operator
from autoresearch_rl.target.splice import need, replace, same, scope, splice, statements

ATTENTION = ("CausalSelfAttention", "forward")
BLOCK = ("Block", "forward")
GPT_INIT = ("GPT", "__init__")
GPT_FORWARD = ("GPT", "forward")
GPT_RESET = ("GPT", "reset_parameters")
OPTIMIZERS = ("build_optimizers",)


# ---- operators ---------------------------------------------------------------------------------


class StructuralOperator:
    """Shared shape: detect the current variant, mask the others by precondition, rewrite, describe."""

    name = ""
    kind = "structural"
    args: tuple[str, ...] = ()
    subject = ""
    labels: Mapping[str, str] = {}
    unused: Mapping[str, tuple[str, ...]] = {}  # variant -> constants still read, but without effect in it

    def current(self, module: cst.Module) -> str | None:
        """The variant this code is, or None when the operator does not recognise it (masked)."""
        raise NotImplementedError

    def rewrite(self, module: cst.Module, current: str, arg: str) -> cst.Module:
        raise NotImplementedError

    def allowed(self, module: cst.Module, arg: str) -> bool:
        """Extra precondition of the target variant (e.g. a helper it needs is defined)."""
        return True

    def note(self, arg: str) -> str:
        return ""

    def applicable(self, module: cst.Module, arg: str) -> bool:
        if arg not in self.args:
            return False
        current = _current(self, module)
        return current is not None and current != arg and self.allowed(module, arg)

    def apply(self, module: cst.Module, arg: str) -> tuple[cst.Module, str]:
        current = _current(self, module)
        if arg not in self.args or current is None or current == arg or not self.allowed(module, arg):
            raise EditError(f"{self.name} {arg} is not applicable to this train.py")
        edited = self.rewrite(module, current, arg)
        note = f" ({self.note(arg)})" if self.note(arg) else ""
        return edited, f"{self.subject} {self.labels[current]} -> {self.labels[arg]}{note}"


@functools.lru_cache(maxsize=256)
def _current(operator: StructuralOperator, module: cst.Module) -> str | None:
    """operator.current(module), once per tree: a mask asks it for every argument, apply asks again."""
    return operator.current(module)


class SwapOperator(StructuralOperator):
    """Variants that are the same statements written differently: find which, replace them one for one.

    `forms` fill `$name` slots in the snippets, for code another operator rewrites in place (the
    rotary arguments of the block's attention call, present or not); the replacement keeps the form.
    """

    where: tuple[str, ...] = ()  # scope path of the statements
    variants: Mapping[str, tuple[str, ...]] = {}
    forms: tuple[Mapping[str, str], ...] = ({},)

    @staticmethod
    def _fill(snippet: str, form: Mapping[str, str]) -> str:
        for key, value in form.items():
            snippet = snippet.replace(f"${key}", value)
        return snippet

    def locate(self, module: cst.Module) -> tuple[str, Mapping[str, str], list[cst.BaseStatement]] | None:
        node = scope(module, self.where)
        if node is None:
            return None
        candidates = list(statements(node))
        for form in self.forms:
            for arg in self.args:
                found = [next((s for s in candidates if same(s, self._fill(snippet, form))), None)
                         for snippet in self.variants[arg]]
                if all(f is not None for f in found):
                    return arg, form, [need(f) for f in found]
        return None

    def current(self, module: cst.Module) -> str | None:
        located = self.locate(module)
        return located[0] if located else None

    def rewrite(self, module: cst.Module, current: str, arg: str) -> cst.Module:
        _, form, found = need(self.locate(module))
        return splice(module, *(replace(old, self._fill(new, form)) for old, new in zip(found, self.variants[arg])))



def inert_constants(module: cst.Module) -> frozenset[str]:
    """Constants the code still reads but that have no effect in the variants it is (LOGIT_SOFTCAP, softcap off)."""
    return frozenset(name for op in structural_operators() if isinstance(op, StructuralOperator)
                     for name in op.unused.get(_current(op, module) or "", ()))


def structural_operators() -> list[Operator]:
    """Every structural operator, in a stable order (the action space's layout depends on it)."""
    from autoresearch_rl.target.structural_layers import (ActivationOperator, BlockLayoutOperator, NormOperator,
                                                          QkNormOperator, SlidingWindowOperator, SoftcapOperator,
                                                          ZeroInitOperator)
    from autoresearch_rl.target.structural_params import (LrScheduleOperator, MatrixOptimizerOperator,
                                                          PositionOperator, TieEmbeddingsOperator)

    return [ActivationOperator(), NormOperator(), QkNormOperator(), PositionOperator(), TieEmbeddingsOperator(),
            SoftcapOperator(), MatrixOptimizerOperator(), LrScheduleOperator(), BlockLayoutOperator(),
            ZeroInitOperator(), SlidingWindowOperator()]
