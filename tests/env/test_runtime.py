"""The frozen runtime train.py calls: the budget clock, train batches, NaN exit, setup from ARL_* variables."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from autoresearch_rl.env import checkpoint, runtime
from autoresearch_rl.env.data import Dataset
from autoresearch_rl.env.presets import Preset
from autoresearch_rl.env.runtime import NAN_EXIT_CODE, Budget, TrainContext
from autoresearch_rl.errors import UserError

CPU = torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# Budget


def test_progress_follows_training_time() -> None:
    budget = Budget(seconds=0.4, max_tokens=None, excluded_steps=0, device=CPU)
    budget.start()
    time.sleep(0.1)
    budget.tick(tokens=10)
    assert 0.1 <= budget.training_seconds < 0.4
    assert budget.progress == pytest.approx(budget.training_seconds / 0.4)
    assert not budget.exhausted
    time.sleep(0.35)
    budget.tick(tokens=10)
    assert budget.exhausted
    assert budget.progress == 1.0


def test_progress_follows_the_token_cap() -> None:
    budget = Budget(seconds=3600.0, max_tokens=1000, excluded_steps=0, device=CPU)
    budget.tick(tokens=250)
    assert budget.progress == pytest.approx(0.25, abs=1e-3)
    assert not budget.exhausted
    budget.tick(tokens=750)
    assert budget.exhausted
    budget.tick(tokens=5000)
    assert budget.progress == 1.0
    assert (budget.tokens, budget.steps) == (6000, 3)


def test_excluded_warmup_steps_do_not_count_against_the_budget() -> None:
    budget = Budget(seconds=0.2, max_tokens=None, excluded_steps=2, device=CPU)
    budget.start()
    for _ in range(2):
        time.sleep(0.15)  # together longer than the whole budget
        budget.tick(tokens=1)
    assert budget.training_seconds == 0.0
    assert not budget.exhausted
    time.sleep(0.02)
    budget.tick(tokens=1)
    assert 0.02 <= budget.training_seconds < 0.15
    assert budget.steps == 3


def test_first_step_time_is_recorded_once() -> None:
    budget = Budget(seconds=1.0, max_tokens=None, excluded_steps=0, device=CPU)
    before = time.time()
    budget.tick(tokens=1)
    first = budget.first_step_at
    assert first is not None and before <= first <= time.time()
    budget.start()
    budget.tick(tokens=1)
    assert budget.first_step_at == first


# ---------------------------------------------------------------------------------------------
# TrainContext


@pytest.fixture
def arl_env(monkeypatch: pytest.MonkeyPatch, smoke_cache: Path, tmp_path: Path) -> Path:
    """ARL_* variables as the runner sets them for cpu-smoke; returns the checkpoint dir."""
    ckpt = tmp_path / "ckpt"
    monkeypatch.setenv("ARL_PRESET", "cpu-smoke")
    monkeypatch.setenv("ARL_CACHE_DIR", str(smoke_cache))
    monkeypatch.setenv("ARL_SEED", "123")
    monkeypatch.setenv("ARL_CHECKPOINT_DIR", str(ckpt))
    for name in ("ARL_DEVICE", "ARL_THREADS", "ARL_LAUNCHED_AT", "ARL_HOME"):
        monkeypatch.delenv(name, raising=False)
    return ckpt


def test_setup_reads_the_runner_environment(arl_env: Path, smoke_preset: Preset) -> None:
    ctx = runtime.setup()
    assert ctx.preset == smoke_preset
    assert ctx.seed == 123
    assert ctx.checkpoint_dir == arl_env
    assert ctx.device == CPU
    assert (ctx.vocab_size, ctx.seq_len) == (smoke_preset.vocab_size, smoke_preset.seq_len)
    assert ctx.budget.seconds == smoke_preset.time_budget_s
    assert ctx.budget.max_tokens == smoke_preset.max_train_tokens


def test_setup_without_prepared_data_tells_to_run_arl_prepare(arl_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("ARL_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(UserError, match="arl prepare"):
        runtime.setup()


def draws_after_setup() -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A torch random draw (model init) and the first three input batches, right after setup()."""
    ctx = runtime.setup()
    init = torch.rand(8)
    batches = ctx.train_batches(4)
    return init, [next(batches)[0] for _ in range(3)]


def test_setup_is_deterministic_for_a_seed(arl_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_a, batches_a = draws_after_setup()
    init_b, batches_b = draws_after_setup()
    assert torch.equal(init_a, init_b)
    assert all(torch.equal(a, b) for a, b in zip(batches_a, batches_b))
    monkeypatch.setenv("ARL_SEED", "124")
    init_c, batches_c = draws_after_setup()
    assert not torch.equal(init_a, init_c)
    # the run's seed changes the initialisation, not the data: runs of a campaign share the data order
    assert all(torch.equal(a, c) for a, c in zip(batches_a, batches_c))
    monkeypatch.setenv("ARL_DATA_SEED", "7")
    init_d, batches_d = draws_after_setup()
    assert torch.equal(init_c, init_d)
    assert not torch.equal(batches_a[0], batches_d[0])


def test_the_data_order_does_not_depend_on_the_batch_size(arl_env: Path) -> None:
    """Window k is the same text whatever the batch size: runs pair up at equal token counts."""
    ctx = runtime.setup()
    fours = ctx.train_batches(4)
    by_four = torch.cat([next(fours)[0] for _ in range(3)])
    sixes = ctx.train_batches(6)
    by_six = torch.cat([next(sixes)[0] for _ in range(2)])
    assert torch.equal(by_four, by_six)
    many = ctx.train_batches(5000)  # across the blocks the stream is drawn in
    assert torch.equal(next(many)[0][:12], by_four)


def test_progress_lines_follow_a_schedule_of_steps_not_of_time() -> None:
    """Every step to 128, then 64 lines per doubling: two runs print the same steps, and logs stay short."""
    printed = [step for step in range(4096) if runtime.prints_progress(step)]
    assert printed[:128] == list(range(128))
    assert printed[128:131] == [128, 130, 132] and 256 in printed and 258 not in printed and 260 in printed
    assert len(printed) == 128 + 64 * 5
    assert sum(runtime.prints_progress(step) for step in range(2**20)) == 128 + 64 * 13


def test_train_batches_are_shifted_windows_of_the_train_split(arl_env: Path) -> None:
    ctx = runtime.setup()
    train = np.asarray(ctx.dataset.tokens("train"))
    x, y = next(ctx.train_batches(4))
    assert x.shape == y.shape == (4, ctx.seq_len)
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert x.is_contiguous() and y.is_contiguous()  # a nanoGPT-style `y.view(-1)` must work on them
    assert torch.equal(y.view(-1), y.reshape(-1))
    for row_x, row_y in zip(x.numpy(), y.numpy()):
        window = np.concatenate([row_x, row_y[-1:]])
        starts = np.flatnonzero(train[: len(train) - len(window) + 1] == window[0])
        assert any(np.array_equal(train[s : s + len(window)], window) for s in starts)


def make_context(root: Path, preset: Preset, seq_len: int) -> TrainContext:
    """A TrainContext over hand-written splits whose token values reveal where each came from."""
    root.mkdir()
    for split, offset in (("train", 0), ("val", 20_000), ("test", 40_000)):
        np.arange(offset, offset + 3000, dtype=np.uint16).tofile(root / f"{split}.bin")
    dataset = Dataset(root=root, vocab_size=65_536, bos_id=0)
    budget = Budget(seconds=10.0, max_tokens=None, excluded_steps=0, device=CPU)
    return TrainContext(preset=dataclasses.replace(preset, seq_len=seq_len), dataset=dataset, device=CPU, seed=0,
                        checkpoint_dir=root / "ckpt", budget=budget, launched_at=time.time())


def test_train_batches_never_touch_val_or_test(smoke_preset: Preset, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "data", smoke_preset, seq_len=16)
    batches = ctx.train_batches(32)
    for _ in range(50):
        x, y = next(batches)
        assert x.shape == y.shape == (32, 16)
        assert int(y.max()) < 3000  # val starts at 20_000, test at 40_000
        assert torch.equal(y, x + 1)  # consecutive ids: y is x shifted by one, window by window


def test_step_done_counts_tokens_and_prints_progress(smoke_preset: Preset, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    ctx = make_context(tmp_path / "data", smoke_preset, seq_len=16)
    ctx.step_done(0, 4.5, tokens=64)
    ctx.step_done(1, 4.25, tokens=64)
    assert (ctx.budget.steps, ctx.budget.tokens, ctx.last_loss) == (2, 128, 4.25)
    out = capsys.readouterr().out
    assert "step 00000" in out and "step 00001" in out and "loss 4.250000 | tokens 128" in out


@pytest.mark.parametrize("loss", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_exits_with_the_nan_code(smoke_preset: Preset, tmp_path: Path, loss: float) -> None:
    ctx = make_context(tmp_path / "data", smoke_preset, seq_len=16)
    ctx.step_done(0, 3.0, tokens=16)
    with pytest.raises(SystemExit) as excinfo:
        ctx.step_done(1, loss, tokens=16)
    assert excinfo.value.code == NAN_EXIT_CODE


def test_finish_saves_the_checkpoint_and_prints_the_summary(smoke_preset: Preset, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    ctx = make_context(tmp_path / "data", smoke_preset, seq_len=8)
    ctx.dataset = dataclasses.replace(ctx.dataset, vocab_size=32)
    model = nn.Sequential(nn.Embedding(32, 8), nn.Linear(8, 32))
    ctx.step_done(0, 3.0, tokens=16)
    capsys.readouterr()
    ctx.finish(model, model_config={"dim": 8})
    lines = capsys.readouterr().out.splitlines()
    summary = dict(line.split(": ", 1) for line in lines[lines.index("---") + 1 :])
    assert summary["checkpoint_format"] == "export"
    assert summary["steps"] == "1" and summary["tokens"] == "16"
    assert summary["params"] == str(sum(p.numel() for p in model.parameters()))
    assert {"training_seconds", "startup_seconds", "save_seconds", "total_seconds", "peak_memory_mb",
            "tokens_per_second", "final_train_loss", "device", "seed"} <= set(summary)
    assert checkpoint.read_meta(ctx.checkpoint_dir)["model_config"] == {"dim": 8}
