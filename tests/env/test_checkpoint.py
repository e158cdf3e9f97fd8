"""The train.py -> evaluator hand-over: an exported program with a dynamic batch, or weights plus a builder."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn as nn

from autoresearch_rl.env import checkpoint

CPU = torch.device("cpu")
VOCAB, SEQ = 32, 8


class TinyLM(nn.Module):
    """Embedding, a causal running mean, a head: (B, T) ids -> (B, T, VOCAB) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 16)
        self.head = nn.Linear(16, VOCAB)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.embed(idx).cumsum(dim=1) / torch.arange(1, idx.size(1) + 1).view(1, -1, 1)
        return self.head(torch.tanh(h))


UNEXPORTABLE_TRAIN_PY = '''
import torch
import torch.nn as nn


class Branchy(nn.Module):
    """Data-dependent Python control flow: torch.export cannot trace it."""

    def __init__(self, vocab: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, idx):
        h = self.embed(idx)
        if idx.sum().item() > 0:
            h = torch.relu(h)
        return self.head(h)


def build_model(config):
    return Branchy(**config)


if __name__ == "__main__":
    raise SystemExit("training must not run on import")
'''


DATACLASS_TRAIN_PY = '''
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch.nn as nn


@dataclass(frozen=True)
class Config:  # like the template's GPTConfig: string annotations make dataclasses look up sys.modules
    vocab: int
    dim: int


class Model(nn.Module):
    def __init__(self, config: Config) -> None:
        super().__init__()
        self.embed = nn.Embedding(config.vocab, config.dim)
        self.head = nn.Linear(config.dim, config.vocab)

    def forward(self, idx):
        if idx.sum().item() > 0:
            return self.head(self.embed(idx))
        return -self.head(self.embed(idx))


def build_model(config: dict) -> Model:
    return Model(Config(**config))
'''


def ids(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, SEQ), generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def train_py(tmp_path: Path) -> Path:
    path = tmp_path / "candidate" / "train.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(UNEXPORTABLE_TRAIN_PY))
    return path


def import_file(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("test_checkpoint_candidate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_exported_model_gives_identical_logits_for_batch_sizes_1_and_3(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TinyLM()
    saved = checkpoint.save(model, tmp_path / "ckpt", model_config={"dim": 16}, seq_len=SEQ, vocab_size=VOCAB,
                            device=CPU)
    assert saved.format == "export" and saved.export_error == ""
    assert (tmp_path / "ckpt" / checkpoint.EXPORT_FILE).is_file()
    assert not (tmp_path / "ckpt" / checkpoint.WEIGHTS_FILE).exists()
    loaded = checkpoint.load(tmp_path / "ckpt", CPU)
    assert not isinstance(loaded, TinyLM)  # the graph runs without the candidate's class
    with torch.no_grad():
        for batch in (1, 3):
            x = ids(batch, seed=batch)
            assert torch.equal(loaded(x), model(x))


def test_meta_records_what_the_evaluator_needs(tmp_path: Path) -> None:
    checkpoint.save(TinyLM(), tmp_path / "ckpt", model_config={"dim": 16}, seq_len=SEQ, vocab_size=VOCAB, device=CPU)
    meta = checkpoint.read_meta(tmp_path / "ckpt")
    assert meta is not None
    assert meta["format"] == "export"
    assert (meta["seq_len"], meta["vocab_size"], meta["device"]) == (SEQ, VOCAB, "cpu")
    assert meta["model_config"] == {"dim": 16}


def test_compiled_model_is_unwrapped_before_export(tmp_path: Path) -> None:
    model = TinyLM()
    saved = checkpoint.save(torch.compile(model), tmp_path / "ckpt", model_config={}, seq_len=SEQ, vocab_size=VOCAB,
                            device=CPU)
    assert saved.format == "export"
    with torch.no_grad():
        assert torch.equal(checkpoint.load(tmp_path / "ckpt", CPU)(ids(2)), model(ids(2)))


def test_unexportable_model_falls_back_to_state_dict_and_rebuilds_from_train_py(train_py: Path,
                                                                                tmp_path: Path) -> None:
    config = {"vocab": VOCAB, "dim": 8}
    torch.manual_seed(0)
    model = import_file(train_py).build_model(config)
    saved = checkpoint.save(model, tmp_path / "ckpt", model_config=config, seq_len=SEQ, vocab_size=VOCAB, device=CPU)
    assert saved.format == "state_dict"
    assert saved.export_error  # why export failed is kept for the record
    meta = checkpoint.read_meta(tmp_path / "ckpt")
    assert meta is not None and meta["build_model"] == "build_model" and meta["model_config"] == config
    assert (tmp_path / "ckpt" / checkpoint.WEIGHTS_FILE).is_file()
    assert not (tmp_path / "ckpt" / checkpoint.EXPORT_FILE).exists()

    torch.manual_seed(1)  # the rebuilt model starts from other random weights; loading must overwrite them
    loaded = checkpoint.load(tmp_path / "ckpt", CPU, train_py=train_py)
    assert not loaded.training
    with torch.no_grad():
        for x in (ids(1), ids(3, seed=3), torch.zeros(2, SEQ, dtype=torch.long)):  # both branches of the model
            assert torch.equal(loaded(x), model(x))


def test_state_dict_checkpoint_without_train_py_is_refused(train_py: Path, tmp_path: Path) -> None:
    config = {"vocab": VOCAB, "dim": 8}
    model = import_file(train_py).build_model(config)
    checkpoint.save(model, tmp_path / "ckpt", model_config=config, seq_len=SEQ, vocab_size=VOCAB, device=CPU)
    with pytest.raises(ValueError, match="train.py"):
        checkpoint.load(tmp_path / "ckpt", CPU)


def test_unfinished_checkpoint_has_no_meta_and_does_not_load(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / checkpoint.WEIGHTS_FILE).write_bytes(b"partial")
    assert checkpoint.read_meta(tmp_path / "ckpt") is None
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "ckpt", CPU)


def test_save_replaces_an_earlier_checkpoint_entirely(train_py: Path, tmp_path: Path) -> None:
    config = {"vocab": VOCAB, "dim": 8}
    checkpoint.save(import_file(train_py).build_model(config), tmp_path / "ckpt", model_config=config,
                    seq_len=SEQ, vocab_size=VOCAB, device=CPU)
    checkpoint.save(TinyLM(), tmp_path / "ckpt", model_config={}, seq_len=SEQ, vocab_size=VOCAB, device=CPU)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == sorted([checkpoint.EXPORT_FILE,
                                                                             checkpoint.META_FILE])


def test_fallback_rebuilds_a_train_py_that_defines_a_dataclass_config(tmp_path: Path) -> None:
    path = tmp_path / "train.py"
    path.write_text(DATACLASS_TRAIN_PY)
    config = {"vocab": VOCAB, "dim": 8}
    builder = tmp_path / "builder.py"  # the test's own import, registered so the dataclass resolves
    builder.write_text(DATACLASS_TRAIN_PY)
    spec = importlib.util.spec_from_file_location("test_checkpoint_builder", builder)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        model = module.build_model(config)
    finally:
        sys.modules.pop(spec.name, None)
    saved = checkpoint.save(model, tmp_path / "ckpt", model_config=config, seq_len=SEQ, vocab_size=VOCAB, device=CPU)
    assert saved.format == "state_dict"
    loaded = checkpoint.load(tmp_path / "ckpt", CPU, train_py=path)
    with torch.no_grad():
        assert torch.equal(loaded(ids(2)), model(ids(2)))
