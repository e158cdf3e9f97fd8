"""train.py throughput: tokens/s of our template GPT against a plain nanoGPT-style GPT of the same size.

Both models get the same shape (vocab, sequence length, batch, width, depth, head size), the same
random tokens and the same kind of training step: forward, cross-entropy, backward, gradient
clipping at 1.0, optimizer step, zero_grad. The template is built from train.py itself
(`make_config` / `GPT` / `build_optimizers`: RMSNorm, RoPE, QK-norm, ReLU^2, softcapped untied
head, Muon + AdamW); the reference is written here (LayerNorm, GELU, learned positions, tied head,
AdamW; nanoGPT's model.py with bias=False). Steps are timed after warm-up with the device
synchronised only at the ends of a timed window, in alternating rounds (template, reference,
template, ...) so that drift on a shared machine hits both alike; the median round is reported, and the
fastest round beside it (the least disturbed one, when other work shares the machine).
A second, shorter measurement without the optimizer step gives the forward+backward throughput,
which separates model cost from optimizer cost (Muon's Newton-Schulz iterations are not free).

On CUDA: bf16 autocast (as the runtime's `ctx.autocast()`), optionally torch.compile of the model
(as train.py does with COMPILE="auto"), and MFU = tokens/s * FLOPs per token / the device's peak
dense bf16 FLOP/s, looked up by the device name (printed; override with --peak-tflops).

    python benchmarks/throughput.py --device cpu                           # cpu-tiny's model, ~1 min on 2 idle cores
    PYTHONPATH=src python benchmarks/throughput.py --device cuda --size cpu-tiny,gpt-small
    PYTHONPATH=src python benchmarks/throughput.py --device cuda --size gpt-small --quick   # < 2 min

Writes benchmarks/results/throughput_<device>.json (and prints a table).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

SRC = Path(__file__).resolve().parent.parent / "src"
if str(SRC) not in sys.path:  # run from a source tree without installing
    sys.path.insert(0, str(SRC))

from autoresearch_rl.target import template_source  # noqa: E402
from autoresearch_rl.target.loader import imported_source  # noqa: E402

# Peak dense bf16 tensor-core FLOP/s (no sparsity), matched against torch.cuda.get_device_name in order.
PEAK_BF16_FLOPS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H200", 989e12),
    ("H100", 989e12),  # SXM / HBM3
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A10G", 70e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("4090", 165e12),
)

# Sizes: cpu-tiny is the template's model as cpu-tiny trains it (depth/width from train.py's constants);
# gpt-small is GPT-2 small's shape with the gpu-5min vocabulary.
SIZES: dict[str, dict] = {
    "cpu-tiny": dict(vocab=4096, seq_len=256),  # depth, width, head_dim, mlp_ratio, batch from train.py
    "gpt-small": dict(vocab=8192, seq_len=1024, depth=12, width=768, head_dim=64, mlp_ratio=4, batch=32),
}


@dataclasses.dataclass(frozen=True)
class Shape:
    """One model size, shared by the template and the reference."""

    name: str
    vocab: int
    seq_len: int
    depth: int
    width: int
    head_dim: int
    mlp_ratio: int
    batch: int


# ---- the plain reference: nanoGPT's model.py (bias=False), written out ------------------------


class RefAttention(nn.Module):
    def __init__(self, width: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(width, 3 * width, bias=False)
        self.c_proj = nn.Linear(width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class RefMLP(nn.Module):
    def __init__(self, width: int, ratio: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, ratio * width, bias=False)
        self.c_proj = nn.Linear(ratio * width, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x)))


class RefBlock(nn.Module):
    def __init__(self, width: int, n_head: int, ratio: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, bias=False)
        self.attn = RefAttention(width, n_head)
        self.ln_2 = nn.LayerNorm(width, bias=False)
        self.mlp = RefMLP(width, ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class RefGPT(nn.Module):
    """GPT-2 as nanoGPT writes it: learned positions, pre-LayerNorm blocks, GELU MLP, tied head."""

    def __init__(self, s: Shape) -> None:
        super().__init__()
        self.shape = s
        self.wte = nn.Embedding(s.vocab, s.width)
        self.wpe = nn.Embedding(s.seq_len, s.width)
        self.blocks = nn.ModuleList(RefBlock(s.width, s.width // s.head_dim, s.mlp_ratio) for _ in range(s.depth))
        self.ln_f = nn.LayerNorm(s.width, bias=False)
        self.lm_head = nn.Linear(s.width, s.vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # (B, T, vocab)

    def flops_per_token(self) -> float:
        """6N + 12*L*d*T with N the matmul weights (blocks and head), as the template counts."""
        s = self.shape
        matmul_params = sum(p.numel() for p in self.blocks.parameters()) + self.lm_head.weight.numel()
        return 6 * matmul_params + 12 * s.depth * s.width * s.seq_len


def reference_optimizers(model: RefGPT, fused: bool) -> list[torch.optim.Optimizer]:
    """nanoGPT's configure_optimizers: AdamW, weight decay on matrices only, fused on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [dict(params=decay, weight_decay=0.1), dict(params=no_decay, weight_decay=0.0)]
    return [torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95), **({"fused": True} if fused else {}))]


# ---- the template, built from train.py ---------------------------------------------------------


def template_shape_defaults(module) -> dict:
    """depth, width, head_dim, mlp_ratio, batch as train.py's constants set them."""
    config = module.make_config(SIZES["cpu-tiny"]["vocab"], SIZES["cpu-tiny"]["seq_len"])
    return dict(depth=config.depth, width=config.model_dim, head_dim=config.head_dim, mlp_ratio=config.mlp_ratio,
                batch=module.BATCH_SIZE)


def build_template(module, s: Shape, device: torch.device) -> tuple[nn.Module, list[torch.optim.Optimizer], float]:
    config = module.make_config(s.vocab, s.seq_len)
    config = dataclasses.replace(config, depth=s.depth, model_dim=s.width, head_dim=s.head_dim, mlp_ratio=s.mlp_ratio)
    model = module.GPT(config).to(device)
    return model, module.build_optimizers(model), float(model.flops_per_token())


# ---- timing ------------------------------------------------------------------------------------


def make_step(model: nn.Module, optimizers: list[torch.optim.Optimizer], device: torch.device, compiled: bool,
              grad_clip: float) -> tuple[Callable[[torch.Tensor, torch.Tensor, bool], None], nn.Module]:
    """One training step as train.py takes it (no per-step host sync; the timer syncs at window ends)."""
    train_model = torch.compile(model) if compiled else model
    autocast = (lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)) if device.type == "cuda" \
        else contextlib.nullcontext

    def step(x: torch.Tensor, y: torch.Tensor, with_optimizer: bool) -> None:
        with autocast():
            logits = train_model(x)  # (B, T, vocab)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.reshape(-1))
        loss.backward()
        if with_optimizer:
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            for opt in optimizers:
                opt.step()
        model.zero_grad(set_to_none=True)

    return step, train_model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, batches: list[tuple[torch.Tensor, torch.Tensor]], n: int, device: torch.device,
          with_optimizer: bool = True) -> float:
    """Seconds per step over `n` steps."""
    sync(device)
    t0 = time.perf_counter()
    for i in range(n):
        x, y = batches[i % len(batches)]
        step(x, y, with_optimizer)
    sync(device)
    return (time.perf_counter() - t0) / n


def peak_flops(device: torch.device, override_tflops: float | None) -> tuple[float | None, str]:
    if override_tflops:
        return override_tflops * 1e12, f"--peak-tflops {override_tflops:g}"
    if device.type != "cuda":
        return None, "n/a (CPU)"
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops, f"{name}: {key} dense bf16 {flops / 1e12:.0f} TFLOP/s"
    return None, f"{name}: unknown peak (pass --peak-tflops for MFU)"


def bench_shape(module, s: Shape, device: torch.device, compile_modes: list[bool], args: argparse.Namespace,
                peak: float | None) -> list[dict]:
    """Rows for (template, reference) x compile modes at one size."""
    gen = torch.Generator().manual_seed(0)
    pool = [torch.randint(0, s.vocab, (s.batch, s.seq_len + 1), generator=gen).to(device) for _ in range(4)]
    batches = [(w[:, :-1], w[:, 1:]) for w in pool]  # (B, T) inputs and targets
    rows = []
    for compiled in compile_modes:
        contenders = {}
        for name in ("template", "reference"):
            torch.manual_seed(0)
            row = dict(size=s.name, model=name, compiled=compiled, device=str(device), **dataclasses.asdict(s))
            row.pop("name")
            try:
                if name == "template":
                    model, optimizers, fpt = build_template(module, s, device)
                    grad_clip = float(getattr(module, "GRAD_CLIP", 1.0))
                else:
                    model = RefGPT(s).to(device)
                    optimizers, fpt, grad_clip = reference_optimizers(model, device.type == "cuda"), model.flops_per_token(), 1.0
                step, _ = make_step(model, optimizers, device, compiled, grad_clip)
                t0 = time.perf_counter()
                for i in range(args.warmup):  # compile (when on), allocator, optimizer state
                    step(*batches[i % len(batches)], True)
                sync(device)
                row.update(params=sum(p.numel() for p in model.parameters()), flops_per_token=fpt,
                           warmup_s=round(time.perf_counter() - t0, 2))
                contenders[name] = (row, step)
            except Exception as exc:  # noqa: BLE001 - report and go on: one broken variant must not lose the others
                row["error"] = f"{type(exc).__name__}: {exc}"[:500]
                traceback.print_exc()
                rows.append(row)
        # each round times every model twice, back to back: full steps, then steps without the optimizer,
        # so a burst of load from elsewhere hits a round's pair, not one column
        rounds: dict[str, list[float]] = {name: [] for name in contenders}
        fwd_bwd: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, (row, step) in list(contenders.items()):
                try:
                    rounds[name].append(timed(step, batches, args.steps, device))
                    fwd_bwd[name].append(timed(step, batches, max(2, args.steps // 2), device, with_optimizer=False))
                except Exception as exc:  # noqa: BLE001 - e.g. out of memory at a large size
                    row["error"] = f"{type(exc).__name__}: {exc}"[:500]
                    rows.append(contenders.pop(name)[0])
        for name, (row, _) in contenders.items():
            tokens = s.batch * s.seq_len
            per_step = statistics.median(rounds[name])
            speeds = [tokens / t for t in rounds[name]]
            row.update(step_ms=round(1e3 * per_step, 2), tokens_per_s=round(tokens / per_step, 1),
                       best_tokens_per_s=round(max(speeds), 1), rounds_tokens_per_s=[round(v, 1) for v in speeds],
                       spread=round((max(speeds) - min(speeds)) / statistics.median(speeds), 3),
                       fwd_bwd_tokens_per_s=round(tokens / statistics.median(fwd_bwd[name]), 1),
                       optimizer_share=round(statistics.median(1 - f / t for f, t in zip(fwd_bwd[name], rounds[name])), 3))
            if peak:
                row["mfu_pct"] = round(100 * row["flops_per_token"] * row["tokens_per_s"] / peak, 2)
                row["tflops"] = round(row["flops_per_token"] * row["tokens_per_s"] / 1e12, 1)
            rows.append(row)
        if "template" in contenders and "reference" in contenders:
            ours, ref = contenders["template"][0], contenders["reference"][0]
            ours["vs_reference"] = round(ours["tokens_per_s"] / ref["tokens_per_s"], 3)
            ours["vs_reference_best"] = round(ours["best_tokens_per_s"] / ref["best_tokens_per_s"], 3)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def parse_shapes(args: argparse.Namespace, defaults: dict) -> list[Shape]:
    shapes = []
    for name in args.size.split(","):
        if name not in SIZES:
            raise SystemExit(f"unknown --size {name!r}; choose from {', '.join(SIZES)}")
        base = {**defaults, **SIZES[name]}
        for key in ("vocab", "seq_len", "depth", "width", "head_dim", "mlp_ratio", "batch"):
            value = getattr(args, key)
            if value is not None:
                base[key] = value
        if base["width"] % base["head_dim"]:
            raise SystemExit(f"--width {base['width']} is not a multiple of --head-dim {base['head_dim']}")
        shapes.append(Shape(name=name, **base))
    return shapes


def print_table(rows: list[dict], peak_note: str) -> None:
    mfu = any("mfu_pct" in r for r in rows)
    header = (f"{'size':<10} {'model':<10} {'compile':<7} {'params':>11} {'step ms':>8} {'tok/s':>9} {'best tok/s':>10} "
              f"{'fwd+bwd tok/s':>13} {'opt %':>6} {'spread':>7} {'vs ref':>7} {'(best)':>7}"
              + (f" {'TFLOP/s':>8} {'MFU %':>6}" if mfu else ""))
    print(header)
    print("-" * len(header))
    for r in rows:
        if "error" in r:
            print(f"{r['size']:<10} {r['model']:<10} {str(r['compiled']):<7} ERROR {r['error'][:80]}")
            continue
        line = (f"{r['size']:<10} {r['model']:<10} {str(r['compiled']):<7} {r['params']:>11,} {r['step_ms']:>8.1f} "
                f"{r['tokens_per_s']:>9,.0f} {r['best_tokens_per_s']:>10,.0f} {r['fwd_bwd_tokens_per_s']:>13,.0f} "
                f"{100 * r['optimizer_share']:>6.1f} {100 * r['spread']:>6.1f}% {r.get('vs_reference', float('nan')):>7.3f} "
                f"{r.get('vs_reference_best', float('nan')):>7.3f}")
        if mfu:
            line += f" {r.get('tflops', float('nan')):>8.1f} {r.get('mfu_pct', float('nan')):>6.2f}"
        print(line)
    print(f"peak used: {peak_note}")
    print("tok/s and step ms: median round; best tok/s: fastest round (least disturbed on a shared machine); "
          "spread: (fastest - slowest) / median; opt %: step time not spent in forward+backward")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--size", default="cpu-tiny", help=f"comma-separated, from: {', '.join(SIZES)}")
    parser.add_argument("--vocab", type=int, default=None, help="override the size's vocabulary")
    parser.add_argument("--seq-len", type=int, default=None, help="override the size's sequence length")
    parser.add_argument("--depth", type=int, default=None, help="override the size's number of blocks")
    parser.add_argument("--width", type=int, default=None, help="override the size's model width")
    parser.add_argument("--head-dim", type=int, default=None, help="override the size's head size")
    parser.add_argument("--mlp-ratio", type=int, default=None, help="override the size's MLP expansion")
    parser.add_argument("--batch", type=int, default=None, help="override the size's batch (sequences per step)")
    parser.add_argument("--compile", choices=("auto", "yes", "no", "both"), default="auto",
                        help="torch.compile the models: auto = both eager and compiled on CUDA (compiled only with "
                             "--quick), eager on CPU")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 CPU, 10 CUDA)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (default 4 CPU, 50 CUDA)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternating timed rounds per model (default 3 CUDA, 6 CPU); the median is reported")
    parser.add_argument("--quick", action="store_true", help="fewer steps and one compile mode: under 2 minutes")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak dense bf16 TFLOP/s for MFU")
    parser.add_argument("--source", type=Path, default=None, help="another train.py to measure instead of the template")
    parser.add_argument("--out", type=Path, default=None, help="JSON (default benchmarks/results/throughput_<device>.json)")
    args = parser.parse_args()

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as the runtime does
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.warmup is None:
        args.warmup = (10 if cuda else 3) if not args.quick else (5 if cuda else 2)
    if args.steps is None:
        args.steps = (50 if cuda else 4) if not args.quick else (20 if cuda else 2)
    if args.rounds is None:
        args.rounds = 3 if cuda else 6
    if args.quick:
        args.rounds = min(args.rounds, 2)
    compile_modes = {"yes": [True], "no": [False], "both": [False, True],
                     "auto": ([True] if args.quick else [False, True]) if cuda else [False]}[args.compile]
    if any(compile_modes):
        args.warmup = max(args.warmup, 3)  # the first compiled steps compile (forward, then backward)

    source = args.source.read_text() if args.source else template_source()
    load_before = [round(x, 2) for x in os.getloadavg()]  # 1/5/15-minute load: others' work on a shared machine
    started = time.perf_counter()
    with imported_source(source) as module:
        shapes = parse_shapes(args, template_shape_defaults(module))
        peak, peak_note = peak_flops(device, args.peak_tflops)
        device_name = torch.cuda.get_device_name(device) if cuda else (platform.processor() or platform.machine())
        print(f"device {device_name} | torch {torch.__version__} | threads {torch.get_num_threads()} | "
              f"warmup {args.warmup} steps, {args.rounds} rounds x {args.steps} steps", flush=True)
        rows = []
        for s in shapes:
            print(f"size {s.name}: {dataclasses.asdict(s)}", flush=True)
            rows += bench_shape(module, s, device, compile_modes, args, peak)
    print_table(rows, peak_note)
    result = dict(benchmark="throughput", device=args.device, device_name=device_name, peak_flops=peak,
                  peak_note=peak_note, torch=torch.__version__, python=platform.python_version(),
                  cpu_threads=torch.get_num_threads(), host=platform.node(), cpus=os.cpu_count(),
                  load_before=load_before, load_after=[round(x, 2) for x in os.getloadavg()],
                  when=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
                  source=str(args.source or "template train.py"), warmup=args.warmup, steps=args.steps,
                  rounds=args.rounds, quick=args.quick, data="uniform random tokens (same for both models)",
                  seconds=round(time.perf_counter() - started, 1), command=" ".join(sys.argv), rows=rows)
    out = args.out or Path(__file__).resolve().parent / "results" / f"throughput_{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(out)
    print(f"wrote {out}")
    if any("error" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
