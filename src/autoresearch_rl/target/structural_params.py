"""Structural edits of the parameters and their optimisation: position encoding (rotary tables or a learned
embedding, with its AdamW group), tied embeddings, the block matrices' optimiser, the shape of the warmdown.

Position encoding and tying add or remove a parameter, so they also edit the AdamW parameter groups of
`build_optimizers`; the helpers that read and rewrite those groups live here with them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import libcst as cst

from autoresearch_rl.target.splice import (Scope, assigns, calls_to, definition, edit_function, find, find_where,
                                           flat_code, imports_math, insert_after, insert_before, loops_over, mentions,
                                           need, remove, replace, same, scope, splice, statement, statements)
from autoresearch_rl.target.structural import (ATTENTION, BLOCK, GPT_FORWARD, GPT_INIT, GPT_RESET, OPTIMIZERS,
                                               StructuralOperator, SwapOperator)
from autoresearch_rl.target.structural_layers import QK_NORM


# ---- 4. position encoding ----------------------------------------------------------------------

ROTARY_FUNCTIONS = (
    '''\
def rotary_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (1, 1, T, head_dim / 2) for rotary position embeddings."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos()[None, None], angles.sin()[None, None]
''',
    '''\
def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of x (B, H, T, D) by position-dependent angles."""
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1).type_as(x)
''',
)
ROTARY_TABLES = (
    "cos, sin = rotary_tables(config.seq_len, config.head_dim, config.rope_base)",
    'self.register_buffer("cos", cos, persistent=False)',
    'self.register_buffer("sin", sin, persistent=False)',
)
ROTARY_SLICE = "cos, sin = self.cos[:, :, :T], self.sin[:, :, :T]"
ROTARY_EMBED = "x = norm(self.embed(idx))  # (B, T, C)"
ROTARY_APPLY = "q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)"
LEARNED_TABLE = "self.pos_embed = nn.Embedding(config.seq_len, config.model_dim)  # learned absolute positions (GPT-2)"
LEARNED_EMBED = "x = norm(self.embed(idx) + self.pos_embed.weight[:T])  # (B, T, C); positions broadcast over the batch"
LEARNED_INIT = "nn.init.normal_(self.pos_embed.weight, std=0.1)  # a tenth of the token embeddings' scale"
LEARNED_GROUP = "dict(params=[model.pos_embed.weight], lr=EMBEDDING_LR * width_scale)"
EMBED_GROUP = "dict(params=[model.embed.weight], lr=EMBEDDING_LR * width_scale)"
ROTARY_NAMES = ("cos", "sin")
ROTARY_CALLS = ((BLOCK, "self.attn"), (GPT_FORWARD, "block"))


def param_names(node: Scope | None) -> list[str] | None:
    if not isinstance(node, cst.FunctionDef):
        return None
    return [p.name.value for p in node.params.params]


def _trailing_names(call: cst.Call) -> list[str]:
    return [flat_code(a.value) for a in call.args[-2:]]


def _separator() -> cst.Comma:
    return cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))


def _drop_rotary(fn: cst.FunctionDef, callee: str | None) -> cst.FunctionDef:
    """Remove the cos/sin parameters (callee None) or the cos/sin arguments of calls to `callee`."""
    if callee is None:
        params = [p for p in fn.params.params if p.name.value not in ROTARY_NAMES]
        if params:
            params[-1] = params[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
        return fn.with_changes(params=fn.params.with_changes(params=params))

    class Drop(cst.CSTTransformer):
        def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
            if flat_code(updated.func) != callee:
                return updated
            args = [a for a in updated.args if flat_code(a.value) not in ROTARY_NAMES]
            if args:
                args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            return updated.with_changes(args=args)

    return fn.visit(Drop())  # type: ignore[return-value]


def _add_rotary(fn: cst.FunctionDef, callee: str | None) -> cst.FunctionDef:
    """Append cos/sin parameters (callee None) or cos/sin arguments to calls to `callee`."""
    if callee is None:
        signature = cst.parse_statement("def f(x, cos: torch.Tensor, sin: torch.Tensor): ...")
        extra = cst.ensure_type(signature, cst.FunctionDef)
        params = list(fn.params.params)
        if params:
            params[-1] = params[-1].with_changes(comma=_separator())
        return fn.with_changes(params=fn.params.with_changes(params=[*params, *extra.params.params[1:]]))

    class Add(cst.CSTTransformer):
        def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
            if flat_code(updated.func) != callee:
                return updated
            extra = cst.ensure_type(cst.parse_expression("f(x, cos, sin)"), cst.Call).args[1:]
            args = list(updated.args)
            if args:
                args[-1] = args[-1].with_changes(comma=_separator())
            return updated.with_changes(args=[*args, *extra])

    return fn.visit(Add())  # type: ignore[return-value]


def adam_statement(module: cst.Module) -> tuple[cst.BaseStatement, cst.List] | None:
    """The statement building AdamW in build_optimizers, and its list of parameter groups."""
    return _adam_statement_in(scope(module, OPTIMIZERS))


@functools.lru_cache(maxsize=256)
def _adam_statement_in(fn: Scope | None) -> tuple[cst.BaseStatement, cst.List] | None:
    for stmt in statements(fn) if fn is not None else ():
        if isinstance(stmt, cst.SimpleStatementLine):
            for call in calls_to(stmt, "torch.optim.AdamW"):
                if call.args and isinstance(call.args[0].value, cst.List):
                    return stmt, call.args[0].value
    return None


def adam_groups(module: cst.Module) -> cst.List | None:
    found = adam_statement(module)
    return found[1] if found else None


def group_index(groups: cst.List | None, snippet: str) -> int | None:
    if groups is None:
        return None
    return next((i for i, e in enumerate(groups.elements) if same(e.value, snippet)), None)


def with_groups(module: cst.Module, change: Callable[[list[cst.Element]], list[cst.Element]]) -> cst.Module:
    found = adam_statement(module)
    assert found is not None
    stmt, groups = found
    new = groups.with_changes(elements=change(list(groups.elements)))
    return splice(module, (stmt, lambda _: [stmt.deep_replace(groups, new)]))  # type: ignore[list-item]


def with_group(module: cst.Module, snippet: str, at: int) -> cst.Module:
    """Insert a group into the AdamW list at index `at`, laid out like the others."""
    groups = adam_groups(module)
    assert groups is not None
    elements = list(groups.elements)
    opening = groups.lbracket.whitespace_after
    comma = cst.Comma(whitespace_after=opening) if isinstance(opening, cst.ParenthesizedWhitespace) else _separator()
    new = cst.Element(cst.parse_expression(snippet), comma=comma)
    if at >= len(elements) and elements:  # appending: the old last element's comma closes the list
        new, elements[-1] = new.with_changes(comma=elements[-1].comma), elements[-1].with_changes(comma=comma)
    elements.insert(at, new)
    return with_groups(module, lambda _: elements)


def without_group(module: cst.Module, snippet: str) -> cst.Module:
    groups = adam_groups(module)
    at = group_index(groups, snippet)
    assert groups is not None and at is not None
    elements = list(groups.elements)
    removed = elements.pop(at)
    if at == len(elements) and elements:  # removed the last: its comma closed the list
        elements[-1] = elements[-1].with_changes(comma=removed.comma)
    return with_groups(module, lambda _: elements)


class PositionOperator(StructuralOperator):
    """RoPE (rotary tables threaded through the blocks) or GPT-2's learned absolute position embeddings."""

    name = "position"
    args = ("rope", "learned")
    subject = "position encoding"
    labels = {"rope": "RoPE", "learned": "learned absolute embeddings"}

    unused = {"learned": ("ROPE_BASE",)}

    def note(self, arg: str) -> str:
        return "ROPE_BASE unused" if arg == "learned" else ""

    def current(self, module: cst.Module) -> str | None:
        init, forward, attention, reset = (scope(module, p) for p in (GPT_INIT, GPT_FORWARD, ATTENTION, GPT_RESET))
        signatures = [param_names(scope(module, p)) for p in (ATTENTION, BLOCK)]
        calls = [calls_to(scope(module, path), callee) for path, callee in ROTARY_CALLS]
        if any(s is None for s in signatures) or not all(calls) or find_where(reset, loops_over("self.blocks")) is None:
            return None
        if find_where(attention, assigns("q,k,v")) is None or adam_groups(module) is None:
            return None
        rope = (all(scope(module, (name,)) is not None for name in ("rotary_tables", "apply_rotary"))
                and all(find(init, s) for s in ROTARY_TABLES) and find(forward, ROTARY_SLICE) is not None
                and find(forward, ROTARY_EMBED) is not None and find(attention, ROTARY_APPLY) is not None
                and all(s is not None and s[-2:] == list(ROTARY_NAMES) for s in signatures)
                and all(_trailing_names(c) == list(ROTARY_NAMES) for found in calls for c in found))
        if rope and find(init, LEARNED_TABLE) is None:
            return "rope"
        learned = (find(init, LEARNED_TABLE) is not None and find(forward, LEARNED_EMBED) is not None
                   and find(reset, LEARNED_INIT) is not None
                   and group_index(adam_groups(module), LEARNED_GROUP) is not None
                   and all(s is not None and not set(ROTARY_NAMES) & set(s) for s in signatures)
                   and not any(set(ROTARY_NAMES) & {flat_code(a.value) for a in c.args}
                               for found in calls for c in found)
                   and scope(module, ("CausalSelfAttention",)) is not None)
        return "learned" if learned and find(attention, ROTARY_APPLY) is None else None

    def rewrite(self, module: cst.Module, current: str, arg: str) -> cst.Module:
        init, forward, attention, reset = (scope(module, p) for p in (GPT_INIT, GPT_FORWARD, ATTENTION, GPT_RESET))
        if arg == "learned":
            tables = [need(find(init, s)) for s in ROTARY_TABLES]
            module = splice(
                module,
                *(remove(need(scope(module, (name,)))) for name in ("rotary_tables", "apply_rotary")),
                replace(tables[0], LEARNED_TABLE), remove(tables[1]), remove(tables[2]),
                remove(need(find(forward, ROTARY_SLICE))), replace(need(find(forward, ROTARY_EMBED)), LEARNED_EMBED),
                remove(need(find(attention, ROTARY_APPLY))),
                insert_before(need(find_where(reset, loops_over("self.blocks"))), statement(LEARNED_INIT)),
            )
            for path, callee in ((ATTENTION, None), (BLOCK, None), *ROTARY_CALLS):
                module = edit_function(module, path, functools.partial(_drop_rotary, callee=callee))
            after_embed = group_index(adam_groups(module), EMBED_GROUP)
            return with_group(module, LEARNED_GROUP, 0 if after_embed is None else after_embed + 1)
        # back to RoPE: the helpers go after norm() (or before the attention), QK-norm stays first
        helpers = [definition(code) for code in ROTARY_FUNCTIONS]
        norm_fn = scope(module, ("norm",))
        place = insert_after(norm_fn, *helpers) if norm_fn is not None else \
            insert_before(need(scope(module, ("CausalSelfAttention",))), *helpers)
        module = splice(
            module, place,
            replace(need(find(init, LEARNED_TABLE)), *ROTARY_TABLES),
            replace(need(find(forward, LEARNED_EMBED)), ROTARY_SLICE, ROTARY_EMBED),
            insert_after(need(find(attention, QK_NORM) or find_where(attention, assigns("q,k,v"))),
                         statement(ROTARY_APPLY)),
            remove(need(find(reset, LEARNED_INIT))),
        )
        for path, callee in ((ATTENTION, None), (BLOCK, None), *ROTARY_CALLS):
            module = edit_function(module, path, functools.partial(_add_rotary, callee=callee))
        return without_group(module, LEARNED_GROUP)


# ---- 5. weight tying ---------------------------------------------------------------------------

TIE = "self.head.weight = self.embed.weight  # tied: one matrix embeds the tokens and scores them"
EMBED_INIT = "nn.init.normal_(self.embed.weight, std=1.0)"


class TieEmbeddingsOperator(StructuralOperator):
    """The head reuses the embedding matrix: it takes the head's small init and LR group, nothing dangles."""

    name = "tie_embeddings"
    args = ("on", "off")
    subject = "embedding and head"
    labels = {"on": "tied", "off": "untied"}

    unused = {"on": ("EMBEDDING_LR",)}

    def note(self, arg: str) -> str:
        return "one matrix with the head's init and LR; EMBEDDING_LR unused" if arg == "on" else ""

    def current(self, module: cst.Module) -> str | None:
        init, reset = scope(module, GPT_INIT), scope(module, GPT_RESET)
        groups = adam_groups(module)
        if find_where(init, assigns("self.head")) is None or find_where(reset, mentions("(self.head.weight")) is None:
            return None
        tie, embed_init, embed_group = find(init, TIE), find(reset, EMBED_INIT), group_index(groups, EMBED_GROUP)
        if tie is not None and embed_init is None and embed_group is None and groups is not None:
            return "on"
        if tie is None and embed_init is not None and embed_group is not None:
            return "off"
        return None

    def rewrite(self, module: cst.Module, current: str, arg: str) -> cst.Module:
        init, reset = scope(module, GPT_INIT), scope(module, GPT_RESET)
        if arg == "on":
            head, embed_init = need(find_where(init, assigns("self.head"))), need(find(reset, EMBED_INIT))
            module = splice(module, insert_after(head, statement(TIE)), remove(embed_init))
            return without_group(module, EMBED_GROUP)
        tie, head_init = need(find(init, TIE)), need(find_where(reset, mentions("(self.head.weight")))
        module = splice(module, remove(tie), insert_before(head_init, statement(EMBED_INIT)))
        return with_group(module, EMBED_GROUP, 0)


# ---- 7. optimiser of the block matrices --------------------------------------------------------


class MatrixOptimizerOperator(SwapOperator):
    name = "matrix_optimizer"
    args = ("muon", "adamw")
    subject = "block-matrix optimiser"
    labels = {"muon": "Muon", "adamw": "AdamW"}
    where = OPTIMIZERS
    variants = {
        "muon": ("matrix_opt = Muon(matrices, lr=MATRIX_LR, momentum=MUON_MOMENTUM, weight_decay=WEIGHT_DECAY)",),
        "adamw": ("""\
            # AdamW at MATRIX_LR / 10: its steps are ~lr per entry, Muon's orthogonalised ones ~lr / sqrt(width)
            matrix_opt = torch.optim.AdamW(matrices, lr=0.1 * MATRIX_LR, betas=(ADAM_BETA1, ADAM_BETA2),
                                           weight_decay=WEIGHT_DECAY)
            """,),
    }

    def allowed(self, module: cst.Module, arg: str) -> bool:
        return arg != "muon" or scope(module, ("Muon",)) is not None

    unused = {"adamw": ("MUON_MOMENTUM",)}

    def note(self, arg: str) -> str:
        return "LR 0.1 x MATRIX_LR; MUON_MOMENTUM unused" if arg == "adamw" else ""


# ---- 8. shape of the warmdown ------------------------------------------------------------------


class LrScheduleOperator(SwapOperator):
    name = "lr_schedule"
    args = ("linear", "cosine")
    subject = "LR warmdown"
    labels = {"linear": "linear", "cosine": "cosine"}
    where = ("lr_multiplier",)
    variants = {
        "linear": ("decay = (1.0 - progress) / WARMDOWN_FRAC  # linear: 1 where the warmdown starts, 0 at the end",),
        "cosine": ("decay = 0.5 * (1.0 - math.cos(math.pi * (1.0 - progress) / WARMDOWN_FRAC))  # cosine: 1 -> 0",),
    }

    def allowed(self, module: cst.Module, arg: str) -> bool:
        return arg != "cosine" or imports_math(module)
