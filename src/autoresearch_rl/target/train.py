"""A small nanochat-style GPT, trained for a fixed wall-clock budget. The one file the agent edits.

Run it by hand with `python train.py` after `arl prepare` (it reads the preset from ARL_PRESET, default
cpu-tiny), or through `arl baseline`. It never computes val_bpb: it trains, then hands the model to
the frozen evaluator through `ctx.finish`, which also prints the summary block after a `---` line.

As shipped (structural edits change it): RMSNorm (no params), RoPE, QK-norm, causal
scaled_dot_product_attention, ReLU^2 MLP, untied head with a logit softcap, zero-initialised output
projections. Optimisers: Muon for the block matrices, AdamW for embeddings, head and scalars. LR
schedule: warmup / constant / linear warmdown over the fraction of the time budget spent.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from autoresearch_rl.env import runtime

# ---------------------------------------------------------------------------------------------
# Hyperparameters. Each `# search:` comment declares the range the agent may explore.
DEPTH = 4  # search: int 1..12
ASPECT_RATIO = 32  # search: log-int 8..128
HEAD_DIM = 32  # search: choice 16, 32, 64, 128
MLP_RATIO = 4  # search: int 1..8
BATCH_SIZE = 16  # search: log-int 2..512
MICRO_BATCH_SIZE = 0  # search: choice 0, 4, 8, 16, 32, 64, 128; divides BATCH_SIZE
MATRIX_LR = 0.02  # search: log 0.001..0.2
EMBEDDING_LR = 0.3  # search: log 0.01..2.0
UNEMBEDDING_LR = 0.008  # search: log 0.0005..0.1
WEIGHT_DECAY = 0.0  # search: linear 0.0..0.3
ADAM_BETA1 = 0.8  # search: linear 0.5..0.95
ADAM_BETA2 = 0.95  # search: linear 0.9..0.999
MUON_MOMENTUM = 0.95  # search: linear 0.8..0.99
WARMUP_FRAC = 0.0  # search: linear 0.0..0.3
WARMDOWN_FRAC = 0.5  # search: linear 0.0..1.0
FINAL_LR_FRAC = 0.0  # search: linear 0.0..0.5
ROPE_BASE = 10000.0  # search: log 1000.0..1000000.0
LOGIT_SOFTCAP = 15.0  # search: log 5.0..100.0
INIT_SCALE = 1.0  # search: log 0.25..4.0
GRAD_CLIP = 1.0  # search: linear 0.0..5.0
COMPILE = "auto"  # search: choice "auto", "never"; device cuda
# ---------------------------------------------------------------------------------------------


def model_dim(depth: int, aspect_ratio: int, head_dim: int) -> int:
    """Width derived from depth (nanochat's one dial), rounded up so heads always divide it."""
    return max(head_dim, -(-depth * aspect_ratio // head_dim) * head_dim)


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    seq_len: int
    depth: int
    model_dim: int
    head_dim: int
    mlp_ratio: int
    rope_base: float
    logit_softcap: float
    init_scale: float

    @property
    def n_head(self) -> int:
        return self.model_dim // self.head_dim


def norm(x: torch.Tensor) -> torch.Tensor:
    """RMSNorm without learnable parameters."""
    return F.rms_norm(x, (x.size(-1),))


def rotary_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape (1, 1, T, head_dim / 2) for rotary position embeddings."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos()[None, None], angles.sin()[None, None]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs of channels of x (B, H, T, D) by position-dependent angles."""
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1).type_as(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.qkv = nn.Linear(config.model_dim, 3 * config.model_dim, bias=False)
        self.proj = nn.Linear(config.model_dim, config.model_dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, D)
        q, k = norm(q), norm(k)  # QK-norm keeps attention logits bounded
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.model_dim, config.mlp_ratio * config.model_dim, bias=False)
        self.proj = nn.Linear(config.mlp_ratio * config.model_dim, config.model_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.relu(self.fc(x)).square())  # ReLU^2


class Block(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.attn = CausalSelfAttention(config)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(norm(x), cos, sin)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.model_dim)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.head = nn.Linear(config.model_dim, config.vocab_size, bias=False)
        cos, sin = rotary_tables(config.seq_len, config.head_dim, config.rope_base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        std = self.config.init_scale * self.config.model_dim**-0.5
        nn.init.normal_(self.embed.weight, std=1.0)
        nn.init.normal_(self.head.weight, std=0.001)
        for block in self.blocks:
            nn.init.normal_(block.attn.qkv.weight, std=std)
            nn.init.normal_(block.mlp.fc.weight, std=std)
            nn.init.zeros_(block.attn.proj.weight)  # every block starts as the identity
            nn.init.zeros_(block.mlp.proj.weight)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids (B, T); position t sees tokens 0..t only."""
        T = idx.size(1)
        cos, sin = self.cos[:, :, :T], self.sin[:, :, :T]
        x = norm(self.embed(idx))  # (B, T, C)
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.head(norm(x)).float()
        return self.config.logit_softcap * torch.tanh(logits / self.config.logit_softcap)

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6 per matmul weight plus attention scores (nanochat's estimate)."""
        c = self.config
        matmul_params = sum(p.numel() for p in self.blocks.parameters()) + self.head.weight.numel()
        return 6 * matmul_params + 12 * c.depth * c.model_dim * c.seq_len


def make_config(vocab_size: int, seq_len: int, tiny: bool = False) -> GPTConfig:
    """The model this file's constants describe; `tiny` keeps the architecture at 2 layers x 2 heads (smoke checks)."""
    depth = min(DEPTH, 2) if tiny else DEPTH
    width = min(model_dim(DEPTH, ASPECT_RATIO, HEAD_DIM), 2 * HEAD_DIM) if tiny else model_dim(DEPTH, ASPECT_RATIO, HEAD_DIM)
    return GPTConfig(vocab_size=vocab_size, seq_len=seq_len, depth=depth, model_dim=width,
                     head_dim=HEAD_DIM, mlp_ratio=MLP_RATIO, rope_base=ROPE_BASE, logit_softcap=LOGIT_SOFTCAP,
                     init_scale=INIT_SCALE)


def build_model(config: dict) -> GPT:
    """Rebuild the model from its saved config (the evaluator's fallback when export fails)."""
    return GPT(GPTConfig(**config))


def orthogonalize(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximate the nearest semi-orthogonal matrix with a quintic Newton-Schulz iteration (Muon)."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.bfloat16() if g.is_cuda else g.float()
    transposed = x.size(-2) > x.size(-1)
    if transposed:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        s = x @ x.mT
        x = a * x + (b * s + c * s @ s) @ x
    return (x.mT if transposed else x).type_as(g)


class Muon(torch.optim.Optimizer):
    """Momentum SGD whose update is orthogonalised: equal step size in every direction of a matrix.
    Matrices of one shape (each layer's qkv, ...) are orthogonalised together, in one batched iteration."""

    def __init__(self, params, lr: float, momentum: float, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            by_shape: dict[tuple[int, ...], list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is not None:
                    by_shape.setdefault(tuple(p.shape), []).append(p)
            for (rows, cols), params in by_shape.items():
                grads = [p.grad for p in params]
                buffers = [self.state[p]["momentum"] if self.state[p] else self._new_buffer(p) for p in params]
                torch._foreach_lerp_(buffers, grads, 1 - group["momentum"])
                update = orthogonalize(torch.stack(grads).lerp_(torch.stack(buffers), group["momentum"]))  # Nesterov
                torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])
                torch._foreach_add_(params, list(update.unbind(0)), alpha=-group["lr"] * max(1.0, rows / cols) ** 0.5)

    def _new_buffer(self, p: torch.Tensor) -> torch.Tensor:
        self.state[p]["momentum"] = torch.zeros_like(p)
        return self.state[p]["momentum"]


def build_optimizers(model: GPT) -> list[torch.optim.Optimizer]:
    """Block matrices get their own optimiser; embeddings and head get AdamW (LRs scaled by width, as nanochat)."""
    width_scale = (model.config.model_dim / 768) ** -0.5
    matrices = [p for p in model.blocks.parameters() if p.ndim == 2]
    adam = torch.optim.AdamW(
        [
            dict(params=[model.embed.weight], lr=EMBEDDING_LR * width_scale),
            dict(params=[model.head.weight], lr=UNEMBEDDING_LR * width_scale),
        ],
        betas=(ADAM_BETA1, ADAM_BETA2), eps=1e-10, weight_decay=WEIGHT_DECAY,
    )
    matrix_opt = Muon(matrices, lr=MATRIX_LR, momentum=MUON_MOMENTUM, weight_decay=WEIGHT_DECAY)
    for opt in (adam, matrix_opt):
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    return [adam, matrix_opt]


def lr_multiplier(progress: float) -> float:
    """Warmup, constant, then warmdown to FINAL_LR_FRAC, over the budget fraction spent."""
    if progress < WARMUP_FRAC:
        return (progress + 1e-3) / WARMUP_FRAC
    if progress <= 1.0 - WARMDOWN_FRAC:
        return 1.0
    decay = (1.0 - progress) / WARMDOWN_FRAC  # linear: 1 where the warmdown starts, 0 at the end
    return decay + (1.0 - decay) * FINAL_LR_FRAC


def main() -> None:
    ctx = runtime.setup()
    config = make_config(ctx.vocab_size, ctx.seq_len, tiny=ctx.smoke)
    model = GPT(config).to(ctx.device)
    optimizers = build_optimizers(model)
    use_compile = COMPILE == "auto" and ctx.device.type == "cuda"
    train_model = torch.compile(model) if use_compile else model
    micro = MICRO_BATCH_SIZE or BATCH_SIZE  # gradient accumulation: the effective batch is always BATCH_SIZE
    if BATCH_SIZE % micro:
        raise ValueError(f"MICRO_BATCH_SIZE {MICRO_BATCH_SIZE} must divide BATCH_SIZE {BATCH_SIZE}")
    accum = BATCH_SIZE // micro
    print(f"params {sum(p.numel() for p in model.parameters()):,} | batch {accum}x{micro}x{ctx.seq_len} | device {ctx.device}",
          flush=True)

    batches = ctx.train_batches(micro)
    step = 0
    while not ctx.budget.exhausted:
        loss_sum = 0.0
        for _ in range(accum):
            x, y = next(batches)  # (B, T) each
            with ctx.autocast():
                logits = train_model(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))
            (loss / accum).backward()
            loss_sum += loss.detach()
        multiplier = lr_multiplier(ctx.budget.progress)
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * multiplier
        if GRAD_CLIP > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        ctx.step_done(step, float(loss_sum) / accum, tokens=accum * x.numel())
        step += 1
    ctx.finish(model, model_config=asdict(config), flops_per_token=model.flops_per_token())


if __name__ == "__main__":
    main()
