"""The frozen runtime that train.py calls: device, seeds, data batches, the budget clock, the save.

train.py owns the model and the optimisation; this module owns everything a candidate must not be
able to bend: which data it trains on, how time is counted, how the model is handed to the
evaluator, and the summary block the runner parses. The runner also enforces a hard deadline from
outside, so a candidate that ignores the clock is killed anyway.

Usage inside train.py::

    ctx = runtime.setup()
    for step, (x, y) in enumerate(ctx.train_batches(BATCH_SIZE)):
        ...
        ctx.step_done(step, loss.item(), tokens=x.numel())
        if ctx.budget.exhausted:
            break
    ctx.finish(model, model_config=..., flops_per_token=...)
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import gc
import math
import os
import random
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoresearch_rl.env import checkpoint
from autoresearch_rl.env.data import Dataset, default_cache_dir
from autoresearch_rl.env.presets import DEFAULT_PRESET, Preset, get_preset

SMOKE_SEQ_LEN = 32  # smoke checks (ARL_SMOKE=1) use sequences this short
NAN_EXIT_CODE = 86  # train.py exits with this when the training loss stops being finite
_PRINT_EVERY_STEP_UNTIL = 128  # progress lines: every step until here, then 64 per doubling of the step count
_WINDOW_BLOCK = 4096  # training windows are drawn from the data stream this many at a time
_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "4090": 165e12}  # dense bf16


@dataclass
class Budget:
    """Counts training time against the preset's budget (and its optional token cap).

    Time is the sum of step durations after the first `excluded_steps` (compile warm-up), measured
    with a device synchronisation so asynchronous GPU work is counted where it happens.
    """

    seconds: float
    max_tokens: int | None
    excluded_steps: int
    device: torch.device
    max_steps: int | None = None  # smoke checks stop after this many steps
    training_seconds: float = 0.0
    tokens: int = 0
    steps: int = 0
    first_step_at: float | None = None  # wall-clock time (epoch) the first step started
    _mark: float | None = None

    def start(self) -> None:
        if self._mark is None:
            self._sync()
            self._mark = time.perf_counter()
            self.first_step_at = time.time()

    def tick(self, tokens: int) -> None:
        """Close one optimizer step of `tokens` tokens."""
        self.start()
        self._sync()
        now = time.perf_counter()
        assert self._mark is not None
        if self.steps >= self.excluded_steps:
            self.training_seconds += now - self._mark
        self._mark = now
        self.steps += 1
        self.tokens += tokens

    @property
    def progress(self) -> float:
        """Fraction of the budget spent, in [0, 1]: what learning-rate schedules are driven by."""
        frac = self.training_seconds / self.seconds
        if self.max_tokens:
            frac = max(frac, self.tokens / self.max_tokens)
        if self.max_steps:
            frac = max(frac, self.steps / self.max_steps)
        return min(1.0, frac)

    @property
    def exhausted(self) -> bool:
        return self.progress >= 1.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


@dataclass
class TrainContext:
    """What setup() hands to train.py."""

    preset: Preset
    dataset: Dataset | None  # None in smoke mode: random tokens, nothing read from disk
    device: torch.device
    seed: int  # initialisation and everything else random in train.py
    checkpoint_dir: Path
    budget: Budget
    launched_at: float  # epoch seconds the runner launched the process (or setup time when run by hand)
    data_seed: int = 0  # the order of training windows: shared by every run of a campaign (common random numbers)
    last_loss: float = float("nan")

    @property
    def vocab_size(self) -> int:
        return self.dataset.vocab_size if self.dataset is not None else self.preset.vocab_size

    @property
    def smoke(self) -> bool:
        """A smoke check: tiny sequences, one step on random tokens, a forward check instead of a save."""
        return self.dataset is None

    @property
    def seq_len(self) -> int:
        return self.preset.seq_len

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast on CUDA; nothing on CPU (bf16 matmuls are slow there)."""
        if self.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless (inputs, targets) pairs of shape (batch_size, seq_len) from the train split only.

        Windows come in one fixed order per data seed, whatever the batch size or the run's own seed:
        every run of a campaign sees the same text at the same token count, so the difference of two
        runs' losses at equal tokens carries no batch-to-batch noise (what early abort compares).
        """
        if self.dataset is None:
            yield from self._random_batches(min(batch_size, 2))
            return
        tokens = self.dataset.tokens("train")
        seq = self.seq_len
        offsets = np.arange(seq + 1)
        pin = self.device.type == "cuda"
        starts_stream = window_starts(len(tokens) - seq, self.data_seed)
        self.budget.start()
        while True:
            starts = np.fromiter(starts_stream, dtype=np.int64, count=batch_size)
            window = torch.from_numpy(tokens[starts[:, None] + offsets].astype(np.int64))  # (B, T+1)
            if pin:
                window = window.pin_memory()
            window = window.to(self.device, non_blocking=True)
            # contiguous, so a script's own `y.view(-1)` works as it does on any nanoGPT loader
            yield window[:, :-1].contiguous(), window[:, 1:].contiguous()

    def _random_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.budget.start()
        while True:
            window = torch.randint(0, self.vocab_size, (batch_size, self.seq_len + 1), device=self.device)
            yield window[:, :-1].contiguous(), window[:, 1:].contiguous()

    def step_done(self, step: int, loss: float, tokens: int) -> None:
        """Count the step against the budget, print a progress line, stop the run on a NaN loss."""
        self.budget.tick(tokens)
        self.last_loss = loss
        if not math.isfinite(loss):
            print(f"step {step:05d} | loss {loss} | non-finite loss, stopping", flush=True)
            sys.exit(NAN_EXIT_CODE)
        if prints_progress(step) or self.budget.exhausted:
            b = self.budget
            tps = b.tokens / b.training_seconds if b.training_seconds > 0 else 0.0
            print(
                f"step {step:05d} | elapsed {b.training_seconds:.2f}s | progress {100 * b.progress:.1f}% "
                f"| loss {loss:.6f} | tokens {b.tokens} | tok/s {tps:.0f}",
                flush=True,
            )

    def finish(self, model: torch.nn.Module, *, model_config: dict[str, Any], flops_per_token: float | None = None,
               build_model: str = "build_model") -> None:
        """Hand the trained model to the evaluator and print the summary block the runner parses."""
        if self.smoke:
            _check_forward(model, self.vocab_size, self.seq_len, self.device)
            print(f"---\nsmoke: ok\nsteps: {self.budget.steps}\nparams: {sum(p.numel() for p in model.parameters())}",
                  flush=True)
            return
        t0 = time.perf_counter()
        saved = checkpoint.save(model, self.checkpoint_dir, model_config=model_config, seq_len=self.seq_len,
                                vocab_size=self.vocab_size, device=self.device, build_model=build_model)
        save_seconds = time.perf_counter() - t0
        b = self.budget
        params = sum(p.numel() for p in model.parameters())
        summary: dict[str, Any] = {
            "training_seconds": round(b.training_seconds, 3),
            "startup_seconds": round((b.first_step_at or time.time()) - self.launched_at, 3),
            "save_seconds": round(save_seconds, 3),
            "total_seconds": round(time.time() - self.launched_at, 3),
            "peak_memory_mb": round(_peak_memory_mb(self.device), 1),
            "tokens": b.tokens,
            "steps": b.steps,
            "params": params,
            "tokens_per_second": round(b.tokens / b.training_seconds, 1) if b.training_seconds > 0 else 0.0,
            "final_train_loss": round(self.last_loss, 6),
            "device": str(self.device),
            "seed": self.seed,
            "data_seed": self.data_seed,
            "checkpoint_format": saved.format,
        }
        peak = _device_peak_flops(self.device)
        if peak and flops_per_token and b.training_seconds > 0:
            summary["mfu"] = round(100 * flops_per_token * b.tokens / b.training_seconds / peak, 2)
        print("---", flush=True)
        for key, value in summary.items():
            print(f"{key}: {value}", flush=True)


def _check_forward(model: torch.nn.Module, vocab_size: int, seq_len: int, device: torch.device) -> None:
    """Smoke mode's stand-in for the evaluator: logits of the right shape, finite."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.randint(0, vocab_size, (2, seq_len), device=device))
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    if tuple(logits.shape[:2]) != (2, seq_len) or logits.size(-1) < vocab_size:
        raise RuntimeError(f"smoke check: model returned {tuple(logits.shape)}, expected (2, {seq_len}, >= {vocab_size})")
    if not torch.isfinite(logits).all():
        raise RuntimeError("smoke check: non-finite logits")


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _device_peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in _PEAK_FLOPS.items() if key in name), None)


def _pick_device(preset: Preset) -> torch.device:
    wanted = os.environ.get("ARL_DEVICE") or preset.device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        print(f"preset {preset.name} wants CUDA but none is available; running on CPU", file=sys.stderr, flush=True)
        wanted = "cpu"
    return torch.device(wanted)


def _spare_exit_collection() -> None:
    """At exit, freeze the heap so the interpreter's final garbage collection skips what torch built.

    That collection is most of a training process's exit once torch.export has been imported by the save
    (~0.75 s of ~0.85 s on cpu-tiny; benchmarks/harness_overhead.py). Nothing the harness reads is lost:
    the checkpoint and its meta.json are closed and renamed into place before, and stdout is flushed
    explicitly at exit. Registering again replaces the earlier registration.
    """
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def window_starts(limit: int, data_seed: int) -> Iterator[int]:
    """Start offsets of training windows in [0, limit), endless, in the one order `data_seed` fixes."""
    rng = np.random.default_rng(data_seed)
    while True:
        yield from rng.integers(0, limit, size=_WINDOW_BLOCK).tolist()


def prints_progress(step: int) -> bool:
    """Whether step `step` prints a progress line: a schedule of steps, not of time, so that two runs
    print at the same steps and their curves pair up (every step to 128, then every 2nd to 256, ...)."""
    if step < _PRINT_EVERY_STEP_UNTIL:
        return True
    stride = 1 << (step.bit_length() - _PRINT_EVERY_STEP_UNTIL.bit_length() + 1)
    return step % stride == 0


def setup() -> TrainContext:
    """Read the runner's ARL_* variables (sane defaults by hand), seed everything, pick the device."""
    launched_at = float(os.environ.get("ARL_LAUNCHED_AT", time.time()))
    preset = get_preset(os.environ.get("ARL_PRESET", DEFAULT_PRESET))
    cache_dir = Path(os.environ.get("ARL_CACHE_DIR") or default_cache_dir())
    seed = int(os.environ.get("ARL_SEED", "0"))
    data_seed = int(os.environ.get("ARL_DATA_SEED", "0"))
    checkpoint_dir = Path(os.environ.get("ARL_CHECKPOINT_DIR", "checkpoint"))
    torch.set_flush_denormal(True)  # denormals made high-LR CPU runs 1.5x slower
    _spare_exit_collection()
    threads = os.environ.get("ARL_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = _pick_device(preset)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    smoke = os.environ.get("ARL_SMOKE") == "1"
    if smoke:
        preset = dataclasses.replace(preset, seq_len=min(preset.seq_len, SMOKE_SEQ_LEN))
    budget = Budget(seconds=preset.time_budget_s, max_tokens=preset.max_train_tokens,
                    excluded_steps=0 if smoke else preset.excluded_warmup_steps, device=device,
                    max_steps=1 if smoke else None)
    return TrainContext(preset=preset, dataset=None if smoke else Dataset.open(preset, cache_dir), device=device,
                        seed=seed, data_seed=data_seed, checkpoint_dir=checkpoint_dir, budget=budget,
                        launched_at=launched_at)

