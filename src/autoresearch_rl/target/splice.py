"""Reading and rewriting the statements of a libcst module by comparing them with canonical snippets.

`same` says whether a statement is a snippet up to comments, layout and docstrings; `scope`,
`statements`, `find` and the predicates locate anchors; `splice` replaces, removes or inserts
statements next to anchors found by identity, many edits in one pass. Trees are immutable and hash
by identity, so the readers cache per node: masking one tree for every operator reads each node once.
The structural operators (`structural.py`) are written in these terms.
"""

from __future__ import annotations

import ast
import functools
import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import libcst as cst

from autoresearch_rl.target.edits import EditError

Scope = cst.Module | cst.ClassDef | cst.FunctionDef
Build = Callable[[cst.BaseStatement], Sequence[cst.BaseStatement]]
N = TypeVar("N")


# ---- reading code ------------------------------------------------------------------------------


def code_of(node: cst.CSTNode) -> str:
    if isinstance(node, cst.BaseStatement):
        return cst.Module(body=[node]).code
    return cst.Module(body=[]).code_for_node(node)


@functools.lru_cache(maxsize=16384)
def flat_code(node: cst.CSTNode) -> str:
    """The node's code without any whitespace: for names and call targets (cached by node, like _node_shape)."""
    return "".join(code_of(node).split())


@functools.lru_cache(maxsize=8192)
def _shape(code: str) -> str:
    """The code's syntax tree as text: equal for code that differs only in comments, layout and docstrings."""
    tree = ast.parse(textwrap.dedent(code))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


@functools.lru_cache(maxsize=4096)
def _node_shape(node: cst.CSTNode) -> str:
    """_shape of a node; nodes are immutable and hash by identity, so masks over one module reuse it."""
    return _shape(code_of(node))


@functools.lru_cache(maxsize=1024)
def _kind(snippet: str) -> tuple[type, ...]:
    """Node type of a snippet (and of its first small statement): a cheap filter before comparing trees."""
    node = cst.parse_statement(textwrap.dedent(snippet))
    return (type(node), type(node.body[0])) if isinstance(node, cst.SimpleStatementLine) else (type(node),)


def _kind_of(node: cst.CSTNode) -> tuple[type, ...]:
    if isinstance(node, cst.SimpleStatementLine):
        return (type(node), type(node.body[0]) if node.body else type(None))
    return (type(node),)


def same(node: cst.CSTNode, snippet: str) -> bool:
    """Same code as the snippet, up to comments, layout and docstrings."""
    if isinstance(node, cst.BaseStatement) and _kind_of(node) != _kind(snippet):
        return False
    return _node_shape(node) == _shape(snippet)


def scope(module: cst.Module, path: tuple[str, ...]) -> Scope | None:
    """The module (path ()), a top-level class or function (("norm",)) or a method (("GPT", "forward"))."""
    node: Scope = module
    for name in path:
        if isinstance(node, cst.Module):
            body: Sequence[cst.CSTNode] = node.body
        elif isinstance(node.body, cst.IndentedBlock):
            body = node.body.body
        else:
            return None
        found = [s for s in body if isinstance(s, (cst.ClassDef, cst.FunctionDef)) and s.name.value == name]
        if not found:
            return None
        node = found[0]
    return node


def statements(node: Scope) -> Iterator[cst.BaseStatement]:
    """A module's top-level statements, or every statement nested in a function (loops included)."""
    if isinstance(node, cst.Module):
        yield from node.body
        return
    if not isinstance(node.body, cst.IndentedBlock):
        return
    for child in node.body.body:
        yield child
        if isinstance(child, (cst.For, cst.While, cst.If, cst.With, cst.Try)):
            yield from statements(child)  # type: ignore[arg-type]


def find(node: Scope | None, snippet: str) -> cst.BaseStatement | None:
    if node is None:
        return None
    return next((s for s in statements(node) if same(s, snippet)), None)


def find_where(node: Scope | None, predicate: Callable[[cst.BaseStatement], bool]) -> cst.BaseStatement | None:
    if node is None:
        return None
    return next((s for s in statements(node) if predicate(s)), None)


def assigns(target: str) -> Callable[[cst.BaseStatement], bool]:
    """Predicate: a one-statement line assigning to `target` (written without spaces, e.g. "q,k,v")."""

    def predicate(statement: cst.BaseStatement) -> bool:
        if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
            return False
        small = statement.body[0]
        if isinstance(small, cst.Assign):
            return any(flat_code(t.target) == target for t in small.targets)
        return isinstance(small, cst.AnnAssign) and flat_code(small.target) == target

    return predicate


def mentions(text: str) -> Callable[[cst.BaseStatement], bool]:
    return lambda s: isinstance(s, cst.SimpleStatementLine) and text in flat_code(s)


def loops_over(iterable: str) -> Callable[[cst.BaseStatement], bool]:
    return lambda s: isinstance(s, cst.For) and flat_code(s.iter) == iterable


def imports_math(module: cst.Module) -> bool:
    return any(same(s, "import math") for s in module.body if isinstance(s, cst.SimpleStatementLine))


@functools.lru_cache(maxsize=1024)
def calls_to(node: cst.CSTNode | None, callee: str) -> tuple[cst.Call, ...]:
    """Every call of `callee` (e.g. "self.attn") inside `node`; cached by node, a mask asks several times per tree."""
    found: list[cst.Call] = []

    class Visitor(cst.CSTVisitor):
        def visit_Call(self, call: cst.Call) -> None:
            if flat_code(call.func) == callee:
                found.append(call)

    if node is not None:
        node.visit(Visitor())
    return tuple(found)


# ---- writing code ------------------------------------------------------------------------------


def need(node: N | None) -> N:
    """An anchor that `current` has checked; None here means a bug, not a masked action."""
    if node is None:
        raise EditError("internal: an anchor checked by the precondition is missing")
    return node


def statement(snippet: str, like: cst.BaseStatement | None = None) -> cst.BaseStatement:
    """Parse a canonical snippet; when it replaces `like`, keep that statement's blank lines above it."""
    node = cst.parse_statement(textwrap.dedent(snippet))
    if like is not None:
        blanks = [line for line in like.leading_lines if line.comment is None]
        node = node.with_changes(leading_lines=[*blanks, *node.leading_lines])
    return node


def definition(snippet: str) -> cst.BaseStatement:
    """A top-level def or class, with the two blank lines above it that PEP 8 asks for."""
    node = cst.parse_statement(textwrap.dedent(snippet))
    return node.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()])


class _Splice(cst.CSTTransformer):
    """Replace statements, found by identity, with what their builder returns; one pass, many edits."""

    def __init__(self, edits: Sequence[tuple[cst.BaseStatement, Build]]) -> None:
        super().__init__()
        self.edits = edits
        self.done = 0

    def on_visit(self, node: cst.CSTNode) -> bool:
        # statements live only in the module, suites and compound statements: skip expressions
        return isinstance(node, (cst.Module, cst.BaseSuite, cst.BaseCompoundStatement))

    def _body(self, original: cst.Module | cst.IndentedBlock, updated: cst.Module | cst.IndentedBlock
              ) -> cst.CSTNode:
        body = list(updated.body)
        for i in reversed(range(len(original.body))):
            for anchor, build in self.edits:
                if original.body[i] is anchor:
                    body[i : i + 1] = build(body[i])
                    self.done += 1
        return updated if body == list(updated.body) else updated.with_changes(body=body)

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock) -> cst.CSTNode:
        return self._body(original_node, updated_node)

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        return self._body(original_node, updated_node)  # type: ignore[return-value]


def splice(module: cst.Module, *edits: tuple[cst.BaseStatement, Build]) -> cst.Module:
    transformer = _Splice(edits)
    edited = module.visit(transformer)
    if transformer.done != len(edits):
        raise EditError(f"internal: {len(edits) - transformer.done} anchor(s) not found while splicing")
    return edited


def replace(old: cst.BaseStatement, *new: str) -> tuple[cst.BaseStatement, Build]:
    nodes = [statement(s, like=old if i == 0 else None) for i, s in enumerate(new)]
    return old, lambda _: nodes


def remove(old: cst.BaseStatement) -> tuple[cst.BaseStatement, Build]:
    return old, lambda _: []


def insert_after(anchor: cst.BaseStatement, *new: cst.BaseStatement) -> tuple[cst.BaseStatement, Build]:
    return anchor, lambda updated: [updated, *new]


def insert_before(anchor: cst.BaseStatement, *new: cst.BaseStatement) -> tuple[cst.BaseStatement, Build]:
    return anchor, lambda updated: [*new, updated]


def edit_function(module: cst.Module, path: tuple[str, ...],
                  change: Callable[[cst.FunctionDef], cst.FunctionDef]) -> cst.Module:
    node = need(scope(module, path))
    assert isinstance(node, cst.FunctionDef), path
    return splice(module, (node, lambda _: [change(node)]))
