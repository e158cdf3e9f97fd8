"""Structural edits inside the layers: MLP activation, normalisation, QK-norm, logit softcap, block layout,
zero-initialised output projections, sliding-window attention.

Each operator recognises the variant a piece of code is and splices in another (`structural.py` has the
shared shape and the registry).
"""

from __future__ import annotations

import libcst as cst

from autoresearch_rl.target.splice import (assigns, definition, find, find_where, insert_after, insert_before, need,
                                           remove, replace, scope, splice, statement)
from autoresearch_rl.target.structural import (ATTENTION, BLOCK, GPT_FORWARD, GPT_INIT, GPT_RESET, StructuralOperator,
                                               SwapOperator)


# ---- 1. MLP activation -------------------------------------------------------------------------

_MLP_INIT = """\
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.model_dim, config.mlp_ratio * config.model_dim, bias=False)
        self.proj = nn.Linear(config.mlp_ratio * config.model_dim, config.model_dim, bias=False)
"""
_MLP = """\
class MLP(nn.Module):
{init}
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return {body}
"""
MLP_VARIANTS = {
    "relu2": _MLP.format(init=_MLP_INIT, body="self.proj(F.relu(self.fc(x)).square())  # ReLU^2"),
    "gelu": _MLP.format(init=_MLP_INIT, body="self.proj(F.gelu(self.fc(x)))  # GELU"),
    "silu": _MLP.format(init=_MLP_INIT, body="self.proj(F.silu(self.fc(x)))  # SiLU"),
    "swiglu": '''\
class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        # SwiGLU has three matrices, so 2/3 of the hidden width keeps the parameter count of two
        hidden = max(8, round(2 * config.mlp_ratio * config.model_dim / 3 / 8) * 8)
        self.fc = nn.Linear(config.model_dim, 2 * hidden, bias=False)  # gate and value projections, fused
        self.proj = nn.Linear(hidden, config.model_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.fc(x).chunk(2, dim=-1)  # 2 x (B, T, hidden)
        return self.proj(F.silu(gate) * value)  # SwiGLU
''',
}


class ActivationOperator(SwapOperator):
    name = "activation"
    args = ("relu2", "gelu", "silu", "swiglu")
    subject = "MLP activation"
    labels = {"relu2": "ReLU²", "gelu": "GELU", "silu": "SiLU", "swiglu": "SwiGLU"}
    variants = {arg: (code,) for arg, code in MLP_VARIANTS.items()}

    def note(self, arg: str) -> str:
        return "gated, hidden resized to 2/3 to keep parameters" if arg == "swiglu" else ""


# ---- 2. normalisation --------------------------------------------------------------------------

NORM_VARIANTS = {
    "rmsnorm": '''\
def norm(x: torch.Tensor) -> torch.Tensor:
    """RMSNorm without learnable parameters."""
    return F.rms_norm(x, (x.size(-1),))
''',
    "layernorm": '''\
def norm(x: torch.Tensor) -> torch.Tensor:
    """LayerNorm without learnable parameters: subtract the mean, then divide by the standard deviation."""
    return F.layer_norm(x, (x.size(-1),))
''',
}


class NormOperator(SwapOperator):
    name = "norm"
    args = ("rmsnorm", "layernorm")
    subject = "normalisation"
    labels = {"rmsnorm": "RMSNorm", "layernorm": "LayerNorm"}
    variants = {arg: (code,) for arg, code in NORM_VARIANTS.items()}


# ---- 3. QK-norm --------------------------------------------------------------------------------

QK_NORM = "q, k = norm(q), norm(k)  # QK-norm keeps attention logits bounded"


class QkNormOperator(StructuralOperator):
    """Normalise queries and keys per head before the dot product; one statement after the q, k, v split."""

    name = "qk_norm"
    args = ("on", "off")
    subject = "QK-norm"
    labels = {"on": "on", "off": "off"}

    def current(self, module: cst.Module) -> str | None:
        attention = scope(module, ATTENTION)
        if find_where(attention, assigns("q,k,v")) is None:
            return None
        return "on" if find(attention, QK_NORM) else "off"

    def rewrite(self, module: cst.Module, current: str, arg: str) -> cst.Module:
        attention = scope(module, ATTENTION)
        if arg == "on":
            return splice(module, insert_after(need(find_where(attention, assigns("q,k,v"))), statement(QK_NORM)))
        return splice(module, remove(need(find(attention, QK_NORM))))


# ---- 6. logit softcap --------------------------------------------------------------------------


class SoftcapOperator(SwapOperator):
    name = "softcap"
    args = ("on", "off")
    subject = "logit softcap"
    labels = {"on": "on", "off": "off"}
    where = GPT_FORWARD
    variants = {
        "on": ("return self.config.logit_softcap * torch.tanh(logits / self.config.logit_softcap)",),
        "off": ("return logits  # raw logits, no softcap",),
    }

    unused = {"off": ("LOGIT_SOFTCAP",)}

    def note(self, arg: str) -> str:
        return "LOGIT_SOFTCAP unused" if arg == "off" else ""


# ---- 9. block layout ---------------------------------------------------------------------------


class BlockLayoutOperator(SwapOperator):
    name = "block_layout"
    args = ("sequential", "parallel")
    subject = "block layout"
    labels = {"sequential": "sequential", "parallel": "parallel attention + MLP"}
    where = BLOCK
    variants = {
        "sequential": ("x = x + self.attn(norm(x)$rope)", "return x + self.mlp(norm(x))"),
        "parallel": ("h = norm(x)  # parallel (GPT-J, PaLM): attention and MLP read the same input",
                     "return x + self.attn(h$rope) + self.mlp(h)"),
    }
    forms = ({"rope": ", cos, sin"}, {"rope": ""})


# ---- 10. zero-initialised output projections ---------------------------------------------------


class ZeroInitOperator(SwapOperator):
    name = "zero_init"
    args = ("on", "off")
    subject = "output projections"
    labels = {"on": "zero init", "off": "normal init"}
    where = GPT_RESET
    variants = {
        "on": ("nn.init.zeros_(block.attn.proj.weight)  # every block starts as the identity",
               "nn.init.zeros_(block.mlp.proj.weight)"),
        "off": ("nn.init.normal_(block.attn.proj.weight, std=std)  # random like the input projections",
                "nn.init.normal_(block.mlp.proj.weight, std=std)"),
    }


# ---- 11. sliding-window attention --------------------------------------------------------------

CAUSAL_ATTENTION = "y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)"
MASKED_ATTENTION = "y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask[:T, :T])  # (B, H, T, D)"
MASK_FUNCTION = '''\
def local_causal_mask(seq_len: int, window: int) -> torch.Tensor:
    """(T, T) boolean mask, True where query t may attend to key s: t - window < s <= t (causal, local)."""
    offset = torch.arange(seq_len)[:, None] - torch.arange(seq_len)[None, :]  # query minus key position
    return (offset >= 0) & (offset < window)
'''
_MASK_LOOP = """\
for i, block in enumerate(self.blocks):  # sliding window in all but the last layer, which sees everything
    window = config.seq_len if i == len(self.blocks) - 1 else max(1, config.seq_len // {divisor})
    block.attn.register_buffer("mask", local_causal_mask(config.seq_len, window), persistent=False)
"""
MASK_LOOPS = {"half": _MASK_LOOP.format(divisor=2), "quarter": _MASK_LOOP.format(divisor=4)}


class SlidingWindowOperator(StructuralOperator):
    """Local causal attention (window T/2 or T/4) in all layers but the last, as a mask buffer per layer."""

    name = "sliding_window"
    args = ("off", "half", "quarter")
    subject = "attention window"
    labels = {"off": "full causal", "half": "sliding T/2", "quarter": "sliding T/4"}

    def note(self, arg: str) -> str:
        return "all layers but the last" if arg != "off" else ""

    def _loop(self, module: cst.Module) -> tuple[str, cst.BaseStatement] | None:
        init = scope(module, GPT_INIT)
        for arg, code in MASK_LOOPS.items():
            found = find(init, code)
            if found is not None:
                return arg, found
        return None

    def current(self, module: cst.Module) -> str | None:
        init, attention = scope(module, GPT_INIT), scope(module, ATTENTION)
        loop, helper = self._loop(module), scope(module, ("local_causal_mask",))
        if find_where(init, assigns("self.blocks")) is None or scope(module, ("CausalSelfAttention",)) is None:
            return None
        if find(attention, CAUSAL_ATTENTION) is not None and loop is None and helper is None:
            return "off"
        if find(attention, MASKED_ATTENTION) is not None and loop is not None and helper is not None:
            return loop[0]
        return None

    def rewrite(self, module: cst.Module, current: str, arg: str) -> cst.Module:
        attention = scope(module, ATTENTION)
        if current != "off" and arg != "off":  # another window size: only the loop changes
            return splice(module, replace(need(self._loop(module))[1], MASK_LOOPS[arg]))
        if arg == "off":
            return splice(module, remove(need(scope(module, ("local_causal_mask",)))),
                          remove(need(self._loop(module))[1]),
                          replace(need(find(attention, MASKED_ATTENTION)), CAUSAL_ATTENTION))
        return splice(module,
                      insert_before(need(scope(module, ("CausalSelfAttention",))), definition(MASK_FUNCTION)),
                      insert_after(need(find_where(scope(module, GPT_INIT), assigns("self.blocks"))),
                                   statement(MASK_LOOPS[arg])),
                      replace(need(find(attention, CAUSAL_ATTENTION)), MASKED_ATTENTION))
