"""Bringing your own train.py: a plain nanoGPT-style script runs unchanged, and each way of breaking the contract
gets its one-line answer (README: "Your own train.py"). Run through the `arl` command, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ARL = str(Path(sys.executable).with_name("arl"))

NANOGPT_STYLE = '''
"""A plain nanoGPT-style script: nothing in it knows about autoresearch-rl beyond the runtime calls."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from autoresearch_rl.env import runtime

LEARNING_RATE = 3e-3  # search: log 1e-4..1e-1
N_EMBD = 32  # search: choice 16, 32, 64
BATCH_SIZE = 8


class TinyLM(nn.Module):
    def __init__(self, vocab_size: int, n_embd: int, block_size: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab_size, n_embd)
        self.pos = nn.Embedding(block_size, n_embd)
        self.head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx):
        T = idx.size(1)
        return self.head(self.tok(idx) + self.pos(torch.arange(T, device=idx.device)))


def build_model(config):
    return TinyLM(**config)


if __name__ == "__main__":
    ctx = runtime.setup()
    config = dict(vocab_size=ctx.vocab_size, n_embd=N_EMBD, block_size=ctx.seq_len)
    model = TinyLM(**config).to(ctx.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    for step, (x, y) in enumerate(ctx.train_batches(BATCH_SIZE)):
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1))  # nanoGPT's own line
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ctx.step_done(step, loss.item(), tokens=x.numel())
        if ctx.budget.exhausted:
            break
    ctx.finish(model, model_config=config)
'''


def arl(*args: str, cache: Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARL_HOME": str(cache)}
    return subprocess.run([ARL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("own-cache")
    prepared = arl("prepare", "--preset", "cpu-smoke", cache=path, cwd=path)
    assert prepared.returncode == 0, prepared.stderr
    return path


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_a_nanogpt_style_script_with_view_on_the_targets_runs_unchanged(cache: Path, tmp_path: Path) -> None:
    (tmp_path / "my_train.py").write_text(NANOGPT_STYLE)
    run = arl("baseline", "--preset", "cpu-smoke", "--source", "my_train.py", "--run-dir", "own", cache=cache,
              cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().splitlines()[-1].startswith("val_bpb: ")
    edits = arl("edits", "--source", "my_train.py", "--json", cache=cache, cwd=tmp_path)
    assert edits.returncode == 0 and "LEARNING_RATE" in edits.stdout and "N_EMBD" in edits.stdout
    assert "BATCH_SIZE" in edits.stdout  # no annotation: a default range around its value


def test_a_script_that_never_hands_over_its_model_is_told_to_call_ctx_finish(cache: Path, tmp_path: Path) -> None:
    (tmp_path / "no_finish.py").write_text(NANOGPT_STYLE.replace("    ctx.finish(model, model_config=config)\n", ""))
    run = arl("baseline", "--preset", "cpu-smoke", "--source", "no_finish.py", "--run-dir", "own", cache=cache,
              cwd=tmp_path)
    assert run.returncode == 1
    assert "NO_CHECKPOINT - train.py exited without saving a model (it must end with ctx.finish(model, ...))" \
        in " ".join((run.stdout + run.stderr).split())


def test_a_script_that_does_not_compile_is_refused_before_anything_runs(cache: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(NANOGPT_STYLE.replace("def build_model(config):", "def build_model(config:"))
    one_line_error(arl("run", "--preset", "cpu-smoke", "--source", "broken.py", "--max-iters", "1", "--run-dir", "r",
                       cache=cache, cwd=tmp_path), "broken.py does not compile (line")


def test_a_bad_search_annotation_names_the_constant(cache: Path, tmp_path: Path) -> None:
    (tmp_path / "bad_range.py").write_text(NANOGPT_STYLE.replace("# search: log 1e-4..1e-1", "# search: log 0.1..0"))
    one_line_error(arl("run", "--preset", "cpu-smoke", "--source", "bad_range.py", "--max-iters", "1", "--run-dir", "r",
                       cache=cache, cwd=tmp_path), "bad # search: annotation", "LEARNING_RATE")


def test_a_script_without_tunable_constants_is_told_how_to_declare_them(cache: Path, tmp_path: Path) -> None:
    source = NANOGPT_STYLE.replace("LEARNING_RATE = 3e-3  # search: log 1e-4..1e-1\n", "").replace(
        "N_EMBD = 32  # search: choice 16, 32, 64\n", "").replace("BATCH_SIZE = 8\n", "UNUSED = 3\n")
    source = source.replace("lr=LEARNING_RATE", "lr=3e-3").replace("n_embd=N_EMBD", "n_embd=32").replace(
        "train_batches(BATCH_SIZE)", "train_batches(8)")
    (tmp_path / "fixed.py").write_text(source)
    one_line_error(arl("run", "--preset", "cpu-smoke", "--source", "fixed.py", "--max-iters", "1", "--run-dir", "r",
                       cache=cache, cwd=tmp_path), "no tunable constant its code reads")
