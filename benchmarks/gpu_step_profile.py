"""Where the template's compiled gpt-small training step spends its time on a GPU, and what candidate speed-ups buy.

One process on one device, so every number is an A/B on the same card:
  1. the template step as train.py takes it (compiled model, loss outside), then its optimizer pieces alone:
     AdamW, Muon's batched step, the per-matrix Muon loop it replaced (0aadfdc), Newton-Schulz under
     torch.compile, fused AdamW;
  2. the template with the loss inside the compiled region;
  3. CUDA-kernel profiles of the compiled and the eager template step (top 25 kernels);
  4. the nanoGPT reference of benchmarks/throughput.py: logits out, loss inside the compiled region, eager.
CUDA only; prints, writes nothing (BENCHMARKS.md section 3 quotes it).

    PYTHONPATH=src python benchmarks/gpu_step_profile.py      # ~3.5 min on an H100
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
_spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks" / "throughput.py")
throughput = importlib.util.module_from_spec(_spec)
sys.modules["throughput"] = throughput  # dataclasses look their module up
_spec.loader.exec_module(throughput)  # its Shape, RefGPT, reference_optimizers, build_template

from autoresearch_rl.target import template_source  # noqa: E402
from autoresearch_rl.target.loader import imported_source  # noqa: E402

SHAPE = throughput.Shape(name="gpt-small", vocab=8192, seq_len=1024, depth=12, width=768, head_dim=64, mlp_ratio=4,
                         batch=32)
TOKENS = SHAPE.batch * SHAPE.seq_len
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def sync() -> None:
    torch.cuda.synchronize()


def seconds_per_call(fn: Callable[[int], object], n: int = 30, rounds: int = 3) -> float:
    """Median over rounds of the mean time of n calls, the device synchronised at the ends of each round."""
    times = []
    for _ in range(rounds):
        sync()
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)
        sync()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def autocast() -> torch.autocast:
    return torch.autocast("cuda", dtype=torch.bfloat16)


def make_batches(device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    pool = [torch.randint(0, SHAPE.vocab, (SHAPE.batch, SHAPE.seq_len + 1), generator=gen).to(device) for _ in range(4)]
    return [(w[:, :-1], w[:, 1:]) for w in pool]  # (B, T) inputs and targets


@torch.no_grad()
def per_matrix_muon_step(opt: torch.optim.Optimizer, orthogonalize: Callable) -> None:
    """Muon as it was before the batched version: one Newton-Schulz iteration per matrix."""
    for group in opt.param_groups:
        for p in group["params"]:
            buf = opt.state[p].setdefault("per_matrix_momentum", torch.zeros_like(p))
            buf.lerp_(p.grad, 1 - group["momentum"])
            update = orthogonalize(p.grad.lerp(buf, group["momentum"]))
            p.mul_(1 - group["lr"] * group["weight_decay"])
            p.add_(update, alpha=-group["lr"] * max(1.0, p.size(-2) / p.size(-1)) ** 0.5)


def time_training(model: torch.nn.Module, optimizers: list, loss_fn: LossFn, batches: list, label: str) -> Callable:
    """Print step time with and without the optimizer (+ clipping); return the full step for profiling."""
    def step(i: int, with_optimizer: bool = True) -> None:
        x, y = batches[i % len(batches)]
        loss_fn(x, y).backward()
        if with_optimizer:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            for opt in optimizers:
                opt.step()
        model.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    for i in range(4):  # compile (forward, then backward), allocator, optimizer state
        step(i)
    sync()
    warmup = time.perf_counter() - t0
    full = seconds_per_call(step)
    fwd_bwd = seconds_per_call(lambda i: step(i, with_optimizer=False))
    print(f"{label:<55} warm {warmup:5.1f}s step {1e3 * full:6.1f} ms {TOKENS / full / 1e3:6.0f}k tok/s  "
          f"fwd+bwd {1e3 * fwd_bwd:6.1f} ms  opt+clip {1e3 * (full - fwd_bwd):5.1f} ms", flush=True)
    return step


def print_profile(step: Callable, steps: int) -> None:
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(steps):
            step(i)
        sync()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70), flush=True)


def loss_outside(compiled_model: Callable) -> LossFn:
    """train.py's step: logits from the (compiled) model, cross-entropy outside it."""
    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast():
            logits = compiled_model(x)
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.reshape(-1))
    return loss


def loss_inside(model: torch.nn.Module) -> LossFn:
    """nanoGPT's step: the model returns the loss, so compile fuses the cross-entropy with the head's epilogue."""
    def model_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = model(x)
        return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.reshape(-1))
    compiled = torch.compile(model_loss)

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast():
            return compiled(x, y)
    return loss


def template_runs(device: torch.device, batches: list) -> None:
    with imported_source(template_source()) as module:
        torch.manual_seed(0)
        model, optimizers, _ = throughput.build_template(module, SHAPE, device)
        step = time_training(model, optimizers, loss_outside(torch.compile(model)), batches,
                             "template compiled (as train.py)")
        x, y = batches[0]
        loss_outside(model)(x, y).backward()  # real gradients for the optimizer-alone timings
        adam, muon = optimizers
        ortho = module.orthogonalize
        print(f"  adam.step {1e3 * seconds_per_call(lambda i: adam.step()):.2f} ms | "
              f"muon batched {1e3 * seconds_per_call(lambda i: muon.step()):.2f} ms | "
              f"muon per-matrix {1e3 * seconds_per_call(lambda i: per_matrix_muon_step(muon, ortho)):.2f} ms | "
              f"clip {1e3 * seconds_per_call(lambda i: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)):.2f} ms",
              flush=True)
        module.orthogonalize = torch.compile(ortho, dynamic=False)  # Muon.step looks it up in the module
        muon.step()
        sync()
        print(f"  muon batched + compiled NS {1e3 * seconds_per_call(lambda i: muon.step()):.2f} ms", flush=True)
        fused_adam = torch.optim.AdamW(adam.param_groups, betas=(0.8, 0.95), eps=1e-10, fused=True)
        print(f"  adam fused {1e3 * seconds_per_call(lambda i: fused_adam.step()):.2f} ms", flush=True)
        model.zero_grad(set_to_none=True)
        time_training(model, [fused_adam, muon], loss_outside(torch.compile(model)), batches,
                      "template compiled + compiled NS + fused adam")
        module.orthogonalize = ortho
        time_training(model, optimizers, loss_inside(model), batches, "template compiled, loss inside compile")
        print_profile(step, steps=5)
        eager_step = time_training(model, optimizers, loss_outside(model), batches, "template eager")
        print_profile(eager_step, steps=3)
        with autocast():
            probe = torch.randn(4, 4, 8, device=device, dtype=torch.bfloat16)
            print("rms_norm under autocast ->", module.norm(probe).dtype, flush=True)


def reference_runs(device: torch.device, batches: list) -> None:
    torch.manual_seed(0)
    model = throughput.RefGPT(SHAPE).to(device)
    optimizers = throughput.reference_optimizers(model, fused=True)
    time_training(model, optimizers, loss_outside(torch.compile(model)), batches, "reference compiled (logits out)")
    time_training(model, optimizers, loss_inside(model), batches, "reference compiled, loss inside compile")
    time_training(model, optimizers, loss_outside(model), batches, "reference eager")


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("gpu_step_profile.py needs a CUDA device")
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    print(torch.__version__, torch.cuda.get_device_name(), flush=True)
    batches = make_batches(device)
    template_runs(device, batches)
    reference_runs(device, batches)


if __name__ == "__main__":
    main()
