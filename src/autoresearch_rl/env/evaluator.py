"""Scores a candidate: val_bpb = total nats / (ln 2 * total bytes), in its own process.

The evaluator owns the metric. It verifies the frozen files' hashes, rebuilds the model from the
checkpoint (an exported graph; candidate code is imported only for the recorded fallback), feeds
validation *inputs only*, and computes the cross-entropy from the logits itself. Targets whose
token stands for zero bytes (special tokens) are left out of both sums. Before scoring it checks
causality: perturbing future tokens must leave earlier logits unchanged.

    python -m autoresearch_rl.env.evaluator --checkpoint DIR --preset P --manifest M --out result.json
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autoresearch_rl.env import checkpoint, integrity
from autoresearch_rl.env.data import Dataset, default_cache_dir
from autoresearch_rl.env.presets import Preset, get_preset

CAUSALITY_ATOL = 1e-3  # logits are softcapped to O(10); float noise is ~1e-5


@dataclass
class Evaluation:
    """The evaluator's verdict, written as JSON for the runner."""

    status: str  # OK, NAN, NONCAUSAL, INTEGRITY_FAILED, EVAL_FAILED, NO_CHECKPOINT
    split: str
    val_bpb: float | None = None  # bits per byte on `split` (named val_bpb whatever the split)
    nats: float = 0.0
    bytes: int = 0
    tokens: int = 0
    sequences: int = 0
    seconds: float = 0.0
    checkpoint_format: str = ""
    imported_candidate_code: bool = False
    uniform_bpb: float | None = None  # what a model predicting every token equally likely scores (untrained level)
    causality_max_diff: float | None = None
    error: str = ""
    changed_files: list[str] = field(default_factory=list)


class _Verdict(Exception):
    """Stops evaluation with a non-OK status."""

    def __init__(self, status: str, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


def _logits(model: torch.nn.Module, x: torch.Tensor, vocab_size: int) -> torch.Tensor:
    out = model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.shape[:2] != x.shape or out.size(-1) < vocab_size:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise _Verdict("EVAL_FAILED", f"model returned {shape}, expected logits of shape (B, T, >= {vocab_size})")
    return out.float()


def check_causality(model: torch.nn.Module, tokens: np.ndarray, preset: Preset, vocab_size: int,
                    device: torch.device) -> float:
    """Largest change of logits before a cut when tokens after the cut are replaced; raises if too big."""
    T = preset.seq_len
    rng = np.random.default_rng(0)
    x = torch.from_numpy(tokens[: 2 * T].astype(np.int64)).view(2, T).to(device)
    reference = _logits(model, x, vocab_size)
    if not torch.isfinite(reference).all():
        raise _Verdict("NAN", "the model produced non-finite logits")
    worst = 0.0
    for cut in (1, T // 2, T - 1):
        perturbed = x.clone()
        perturbed[:, cut:] = torch.from_numpy(rng.integers(0, vocab_size, size=(2, T - cut))).to(device)
        diff = (_logits(model, perturbed, vocab_size)[:, :cut] - reference[:, :cut]).abs().max().item()
        worst = max(worst, diff)
        if not diff <= CAUSALITY_ATOL:
            raise _Verdict("NONCAUSAL", f"logits at positions < {cut} changed by {diff:.3g} when later tokens changed")
    return worst


def score(model: torch.nn.Module, tokens: np.ndarray, token_bytes: np.ndarray, preset: Preset,
          device: torch.device) -> tuple[float, int, int, int]:
    """(nats, bytes, tokens, sequences) over non-overlapping windows of the split."""
    T = preset.seq_len
    n_seq = min(preset.eval_tokens // T, (len(tokens) - 1) // T)
    if n_seq < 1:
        raise _Verdict("EVAL_FAILED", f"split has {len(tokens)} tokens, fewer than one sequence of {T + 1}")
    byte_table = torch.from_numpy(token_bytes.astype(np.int64)).to(device)
    nats, nbytes, ntok = 0.0, 0, 0
    for start in range(0, n_seq, preset.eval_batch_size):
        rows = range(start, min(n_seq, start + preset.eval_batch_size))
        window = np.stack([tokens[r * T : r * T + T + 1] for r in rows]).astype(np.int64)
        window_t = torch.from_numpy(window).to(device)
        x, y = window_t[:, :-1], window_t[:, 1:]  # the model only ever sees x
        logp = torch.log_softmax(_logits(model, x, len(token_bytes)), dim=-1)
        nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)  # (B, T)
        weight = byte_table[y]
        counted = weight > 0
        batch_nats = nll[counted].double().sum().item()
        if not math.isfinite(batch_nats):
            raise _Verdict("NAN", "non-finite loss on the evaluation split")
        nats += batch_nats
        nbytes += int(weight.sum().item())
        ntok += int(counted.sum().item())
    return nats, nbytes, ntok, n_seq


def evaluate(checkpoint_dir: Path, preset: Preset, cache_dir: Path, *, manifest: dict[str, str] | None = None,
             train_py: Path | None = None, split: str = "val") -> Evaluation:
    """Verify, load, check causality and score; every failure is a status, never an exception."""
    started = time.perf_counter()
    result = Evaluation(status="OK", split=split)
    try:
        dataset = Dataset.open(preset, cache_dir)
        if manifest is not None:
            changed = integrity.differences(manifest, integrity.build_manifest(dataset.root, include_train=False))
            if changed:
                result.changed_files = changed
                raise _Verdict("INTEGRITY_FAILED", "frozen files changed since the campaign started: " + "; ".join(changed))
        meta = checkpoint.read_meta(checkpoint_dir)
        if meta is None:
            raise _Verdict("NO_CHECKPOINT", f"no checkpoint in {checkpoint_dir} (train.py must end with ctx.finish(model, ...))")
        result.checkpoint_format = meta["format"]
        result.imported_candidate_code = meta["format"] != "export"
        wanted = torch.device(meta.get("device", "cpu"))
        device = wanted if wanted.type != "cuda" or torch.cuda.is_available() else torch.device("cpu")
        try:
            model = checkpoint.load(checkpoint_dir, device, train_py=train_py)
        except Exception as exc:  # noqa: BLE001 - a checkpoint that does not load is the candidate's failure
            raise _Verdict("EVAL_FAILED", f"could not load the checkpoint: {type(exc).__name__}: {exc}") from None
        tokens, token_bytes = dataset.tokens(split), dataset.token_bytes()
        with torch.no_grad():
            result.causality_max_diff = check_causality(model, tokens, preset, dataset.vocab_size, device)
            result.nats, result.bytes, result.tokens, result.sequences = score(model, tokens, token_bytes, preset, device)
        result.val_bpb = result.nats / (math.log(2) * result.bytes)
        result.uniform_bpb = math.log2(len(token_bytes)) * result.tokens / result.bytes
    except _Verdict as verdict:
        result.status, result.error = verdict.status, verdict.error
    except Exception as exc:  # noqa: BLE001 - e.g. a shape error inside the candidate's graph
        result.status, result.error = "EVAL_FAILED", f"{type(exc).__name__}: {exc}"[:2000]
    result.seconds = round(time.perf_counter() - started, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--preset", required=True)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--manifest", type=Path, default=None, help="campaign's frozen manifest (JSON)")
    parser.add_argument("--train-py", type=Path, default=None, help="candidate source, for the state_dict fallback")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    if threads := os.environ.get("ARL_THREADS"):  # this slot's share of the cores, as in training (backends/local.py)
        torch.set_num_threads(int(threads))
    manifest = integrity.read_manifest(args.manifest) if args.manifest else None
    result = evaluate(args.checkpoint, get_preset(args.preset), args.cache_dir or default_cache_dir(),
                      manifest=manifest, train_py=args.train_py, split=args.split)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(result), indent=2))
    os.replace(tmp, args.out)
    print(json.dumps({k: v for k, v in asdict(result).items() if k in ("status", "val_bpb", "seconds", "error")}))
    return 0


if __name__ == "__main__":
    # at exit, skip the final garbage collection of what torch.export.load built (~0.7 s of the process's
    # exit on cpu-tiny); the verdict is already written and renamed into place by then
    atexit.register(gc.freeze)
    sys.exit(main())
