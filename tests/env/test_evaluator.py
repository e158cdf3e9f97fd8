"""The evaluator owns the score: exact bpb arithmetic, causality, shapes and non-finite outputs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from autoresearch_rl.env import checkpoint
from autoresearch_rl.env.data import Dataset
from autoresearch_rl.env.evaluator import evaluate


class TableModel(torch.nn.Module):
    """Logits depend only on the current token: a bigram table."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(table)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table[idx]


class WrongShape(torch.nn.Module):
    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return idx.float()[..., None]  # (B, T, 1): no vocabulary dimension


def _save(model: torch.nn.Module, tmp_path: Path, preset, vocab: int) -> Path:
    directory = tmp_path / "checkpoint"
    checkpoint.save(model, directory, model_config={}, seq_len=preset.seq_len, vocab_size=vocab,
                    device=torch.device("cpu"))
    return directory


def test_bpb_matches_a_hand_computation(tmp_path: Path, smoke_cache: Path, smoke_preset) -> None:
    dataset = Dataset.open(smoke_preset, smoke_cache)
    V, T = dataset.vocab_size, smoke_preset.seq_len
    table = torch.randn(V, V, generator=torch.Generator().manual_seed(0))
    result = evaluate(_save(TableModel(table), tmp_path, smoke_preset, V), smoke_preset, smoke_cache)
    assert result.status == "OK", result.error

    tokens = np.asarray(dataset.tokens("val"), dtype=np.int64)
    token_bytes = dataset.token_bytes()
    n_seq = min(smoke_preset.eval_tokens // T, (len(tokens) - 1) // T)
    logp = torch.log_softmax(table.double(), dim=-1).numpy()
    nats = nbytes = 0.0
    for r in range(n_seq):
        x, y = tokens[r * T : r * T + T], tokens[r * T + 1 : r * T + T + 1]
        keep = token_bytes[y] > 0  # special tokens count zero bytes and are left out of both sums
        nats += -logp[x[keep], y[keep]].sum()
        nbytes += token_bytes[y].sum()
    assert result.bytes == nbytes
    assert math.isclose(result.val_bpb, nats / (math.log(2) * nbytes), rel_tol=1e-6)


def test_uniform_model_scores_log2_vocab_per_token(tmp_path: Path, smoke_cache: Path, smoke_preset) -> None:
    V = Dataset.open(smoke_preset, smoke_cache).vocab_size
    result = evaluate(_save(TableModel(torch.zeros(V, V)), tmp_path, smoke_preset, V), smoke_preset, smoke_cache)
    assert result.status == "OK"
    assert math.isclose(result.val_bpb, result.uniform_bpb, rel_tol=1e-6)  # float32 log_softmax
    assert result.causality_max_diff == 0.0


def test_test_split_is_scored_separately(tmp_path: Path, smoke_cache: Path, smoke_preset) -> None:
    V = Dataset.open(smoke_preset, smoke_cache).vocab_size
    ckpt = _save(TableModel(torch.randn(V, V)), tmp_path, smoke_preset, V)
    val = evaluate(ckpt, smoke_preset, smoke_cache, split="val")
    test = evaluate(ckpt, smoke_preset, smoke_cache, split="test")
    assert val.status == test.status == "OK"
    assert (val.split, test.split) == ("val", "test")
    assert val.val_bpb != test.val_bpb


def test_wrong_logit_shape_is_eval_failed(tmp_path: Path, smoke_cache: Path, smoke_preset) -> None:
    V = Dataset.open(smoke_preset, smoke_cache).vocab_size
    result = evaluate(_save(WrongShape(), tmp_path, smoke_preset, V), smoke_preset, smoke_cache)
    assert result.status == "EVAL_FAILED"
    assert "expected logits" in result.error


def test_non_finite_logits_are_nan(tmp_path: Path, smoke_cache: Path, smoke_preset) -> None:
    V = Dataset.open(smoke_preset, smoke_cache).vocab_size
    table = torch.zeros(V, V)
    table[:, 0] = float("nan")
    result = evaluate(_save(TableModel(table), tmp_path, smoke_preset, V), smoke_preset, smoke_cache)
    assert result.status == "NAN"


def test_missing_checkpoint_is_no_checkpoint(tmp_path: Path, smoke_cache: Path, smoke_preset) -> None:
    result = evaluate(tmp_path / "nothing", smoke_preset, smoke_cache)
    assert result.status == "NO_CHECKPOINT"
