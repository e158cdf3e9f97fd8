"""Prepared datasets: built once into the cache, read as memmaps, no pickle, clear errors for user mistakes."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from autoresearch_rl.env import corpus
from autoresearch_rl.env.data import DATA_FILES, Dataset, dataset_dir, prepare_dataset
from autoresearch_rl.env.presets import Preset, get_preset
from autoresearch_rl.env.shards import iter_texts, write_parquet_shard
from autoresearch_rl.env.tokenizer import load_tokenizer
from autoresearch_rl.errors import UserError


def quiet(_: str) -> None:
    pass


def mtimes(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in root.iterdir()}


@pytest.fixture
def copied_cache(smoke_preset: Preset, smoke_cache: Path, tmp_path: Path) -> Path:
    """A private copy of the prepared cache, for tests that rebuild or alter it."""
    cache = tmp_path / "cache"
    shutil.copytree(dataset_dir(smoke_preset, smoke_cache), dataset_dir(smoke_preset, cache))
    return cache


# ---------------------------------------------------------------------------------------------
# The embedded corpus (cpu-smoke shares cpu-tiny's data)


def test_prepared_dataset_holds_exactly_the_expected_files(smoke_preset: Preset, smoke_cache: Path) -> None:
    root = dataset_dir(smoke_preset, smoke_cache)
    assert sorted(p.name for p in root.iterdir()) == sorted(DATA_FILES)


def test_dataset_dir_holds_no_pickle(smoke_preset: Preset, smoke_cache: Path) -> None:
    for path in dataset_dir(smoke_preset, smoke_cache).rglob("*"):
        assert path.suffix in {".json", ".safetensors", ".bin"}, path
        assert not path.read_bytes()[:2] == b"\x80\x04", f"{path} looks like a pickle"


def test_prepare_leaves_no_staging_directory(smoke_cache: Path) -> None:
    assert not [p for p in smoke_cache.iterdir() if "partial" in p.name]


def test_token_files_hold_ids_below_vocab_size(smoke_preset: Preset, smoke_cache: Path) -> None:
    ds = Dataset.open(smoke_preset, smoke_cache)
    assert ds.vocab_size == smoke_preset.vocab_size
    for split in corpus.SPLITS:
        tokens = ds.tokens(split)
        assert len(tokens) > 0
        assert int(tokens.max()) < ds.vocab_size


def test_every_document_of_each_split_starts_with_bos(smoke_preset: Preset, smoke_cache: Path) -> None:
    ds = Dataset.open(smoke_preset, smoke_cache)
    for split in corpus.SPLITS:
        tokens = ds.tokens(split)
        assert tokens[0] == ds.bos_id
        assert np.count_nonzero(tokens == ds.bos_id) == len(list(corpus.kjv_documents(split)))


def test_val_token_bytes_sum_to_the_val_text_bytes(smoke_preset: Preset, smoke_cache: Path) -> None:
    """The bpb denominator: raw bytes of the scored tokens equal the UTF-8 size of the split's text."""
    ds = Dataset.open(smoke_preset, smoke_cache)
    token_bytes = ds.token_bytes()
    assert len(token_bytes) == ds.vocab_size
    assert token_bytes[ds.bos_id] == 0
    text_bytes = sum(len(doc.encode("utf-8")) for doc in corpus.kjv_documents("val"))
    assert int(token_bytes[np.asarray(ds.tokens("val"))].sum()) == text_bytes


def test_meta_records_token_counts_and_provenance(smoke_preset: Preset, smoke_cache: Path) -> None:
    ds = Dataset.open(smoke_preset, smoke_cache)
    meta = ds.meta()
    assert meta["corpus"] == "kjv"
    assert meta["preset_dataset"] == smoke_preset.dataset_id
    assert meta["token_dtype"] == "uint16"
    assert meta["tokens"] == {split: len(ds.tokens(split)) for split in corpus.SPLITS}


def test_tokens_are_a_read_only_memmap(smoke_preset: Preset, smoke_cache: Path) -> None:
    tokens = Dataset.open(smoke_preset, smoke_cache).tokens("train")
    assert isinstance(tokens, np.memmap)
    with pytest.raises(ValueError):
        tokens[0] = 1


def test_tokens_of_an_unknown_split_are_refused(smoke_preset: Preset, smoke_cache: Path) -> None:
    with pytest.raises(ValueError, match="unknown split"):
        Dataset.open(smoke_preset, smoke_cache).tokens("dev")


def test_cpu_tiny_opens_the_data_prepared_for_cpu_smoke(smoke_cache: Path) -> None:
    assert Dataset.open(get_preset("cpu-tiny"), smoke_cache).vocab_size == 4096


def test_saved_tokenizer_encodes_the_splits(smoke_preset: Preset, smoke_cache: Path) -> None:
    ds = Dataset.open(smoke_preset, smoke_cache)
    tok = load_tokenizer(ds.root / "tokenizer.json")
    first_val = next(corpus.kjv_documents("val"))
    ids = tok.encode(first_val, add_special_tokens=False).ids
    assert ds.tokens("val")[1 : 1 + len(ids)].tolist() == ids


def test_prepare_is_idempotent(smoke_preset: Preset, copied_cache: Path) -> None:
    root = dataset_dir(smoke_preset, copied_cache)
    before = mtimes(root)
    assert prepare_dataset(smoke_preset, copied_cache, progress=quiet) == root
    assert mtimes(root) == before


def test_open_unprepared_cache_tells_to_run_arl_prepare(smoke_preset: Preset, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="arl prepare --preset cpu-smoke"):
        Dataset.open(smoke_preset, tmp_path / "empty")


def test_uncreatable_cache_dir_is_a_user_error(smoke_preset: Preset, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(UserError, match="cannot write the cache directory"):
        prepare_dataset(smoke_preset, blocker / "cache", progress=quiet)


def test_data_option_with_a_cpu_preset_is_a_user_error(smoke_preset: Preset, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--data"):
        prepare_dataset(smoke_preset, tmp_path / "cache", data=str(tmp_path), progress=quiet)
    assert not (dataset_dir(smoke_preset, tmp_path / "cache") / "meta.json").exists()


def test_failed_prepare_leaves_no_staging_directory(smoke_preset: Preset, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(UserError):
        prepare_dataset(smoke_preset, cache, data=str(tmp_path), progress=quiet)
    assert not list(tmp_path.rglob(".*partial*"))


# ---------------------------------------------------------------------------------------------
# The climbmix path (gpu-5min), fed from a local directory of parquet shards

CLIMBMIX_TRAIN = ("shard_00000.parquet", "shard_00001.parquet")
CLIMBMIX_VAL, CLIMBMIX_TEST = "shard_06542.parquet", "shard_06541.parquet"


def climbmix_docs() -> dict[str, list[str]]:
    train = list(corpus.kjv_documents("train"))
    return {
        CLIMBMIX_TRAIN[0]: train[:40],
        CLIMBMIX_TRAIN[1]: train[40:80] + ["café 👍🏽 日本語 naïve"],
        CLIMBMIX_VAL: [f"validation document {i}: the LORD spake unto Moses ü" for i in range(6)],
        CLIMBMIX_TEST: [f"held-out test document {i} — 中文 ✨" for i in range(4)],
    }


@pytest.fixture(scope="module")
def climbmix(tmp_path_factory: pytest.TempPathFactory) -> tuple[Preset, Path, Path, Path]:
    """(preset, source dir, cache dir, dataset root) for a 2-shard gpu-5min prepared from local shards."""
    source = tmp_path_factory.mktemp("climbmix-origin")
    for name, docs in climbmix_docs().items():
        write_parquet_shard(source / name, docs, row_group_rows=16)
    preset = dataclasses.replace(get_preset("gpu-5min"), num_train_shards=2, vocab_size=512)
    cache = tmp_path_factory.mktemp("climbmix-cache")
    root = prepare_dataset(preset, cache, data=str(source), progress=quiet)
    return preset, source, cache, root


def split_documents(tokens: np.ndarray, bos_id: int) -> list[list[int]]:
    starts = np.flatnonzero(tokens == bos_id).tolist() + [len(tokens)]
    assert starts[0] == 0
    return [tokens[a + 1 : b].tolist() for a, b in zip(starts, starts[1:])]


def test_climbmix_prepare_writes_three_split_files_with_tokens(climbmix: tuple[Preset, Path, Path, Path]) -> None:
    preset, _, cache, root = climbmix
    assert root == dataset_dir(preset, cache)
    assert sorted(p.name for p in root.iterdir()) == sorted(DATA_FILES)
    ds = Dataset.open(preset, cache)
    for split in corpus.SPLITS:
        tokens = ds.tokens(split)
        assert len(tokens) > 0
        assert int(tokens.max()) < ds.vocab_size <= preset.vocab_size


def test_climbmix_meta_records_corpus_and_shard_names(climbmix: tuple[Preset, Path, Path, Path]) -> None:
    preset, source, cache, _ = climbmix
    meta = Dataset.open(preset, cache).meta()
    assert meta["corpus"] == "climbmix"
    assert meta["source"] == str(source)
    assert meta["shards"] == {"train": list(CLIMBMIX_TRAIN), "val": [CLIMBMIX_VAL], "test": [CLIMBMIX_TEST]}


def test_climbmix_shards_are_copied_into_the_cache(climbmix: tuple[Preset, Path, Path, Path]) -> None:
    _, source, cache, _ = climbmix
    copied = cache / "shards" / "climbmix"
    assert sorted(p.name for p in copied.iterdir()) == sorted([*CLIMBMIX_TRAIN, CLIMBMIX_VAL, CLIMBMIX_TEST])
    for name in (*CLIMBMIX_TRAIN, CLIMBMIX_VAL, CLIMBMIX_TEST):
        assert list(iter_texts([copied / name])) == list(iter_texts([source / name]))


def test_climbmix_splits_come_from_their_own_shards(climbmix: tuple[Preset, Path, Path, Path]) -> None:
    """Last shard validates, the one before it tests, shards 0..n-1 train: decode each split to check."""
    preset, _, cache, _ = climbmix
    ds = Dataset.open(preset, cache)
    tok = load_tokenizer(ds.root / "tokenizer.json")
    docs = climbmix_docs()
    expected = {
        "train": docs[CLIMBMIX_TRAIN[0]] + docs[CLIMBMIX_TRAIN[1]],
        "val": docs[CLIMBMIX_VAL],
        "test": docs[CLIMBMIX_TEST],
    }
    for split, texts in expected.items():
        decoded = [tok.decode(ids) for ids in split_documents(np.asarray(ds.tokens(split)), ds.bos_id)]
        assert decoded == texts


def test_climbmix_prepare_is_idempotent(climbmix: tuple[Preset, Path, Path, Path]) -> None:
    preset, source, cache, root = climbmix
    before = mtimes(root)
    assert prepare_dataset(preset, cache, data=str(source), progress=quiet) == root
    assert mtimes(root) == before


def test_prepare_with_force_rebuilds(climbmix: tuple[Preset, Path, Path, Path], tmp_path: Path) -> None:
    """Checked on the small climbmix dataset (rebuilding the KJV one costs seconds); the logic is shared."""
    preset, source, cache, _ = climbmix
    own_cache = tmp_path / "cache"
    shutil.copytree(cache, own_cache)
    root = dataset_dir(preset, own_cache)
    (root / "stale.txt").write_text("left by an old build")
    before = mtimes(root)
    assert prepare_dataset(preset, own_cache, data=str(source), force=True, progress=quiet) == root
    after = mtimes(root)
    assert sorted(after) == sorted(DATA_FILES)
    assert all(after[name] != before[name] for name in DATA_FILES)
    assert json.loads((root / "meta.json").read_text())["tokens"] == Dataset.open(preset, cache).meta()["tokens"]
    assert not [p for p in own_cache.iterdir() if "partial" in p.name]


def test_climbmix_missing_shard_is_a_user_error(tmp_path: Path) -> None:
    source = tmp_path / "origin"
    for name, docs in climbmix_docs().items():
        if name != CLIMBMIX_VAL:
            write_parquet_shard(source / name, docs)
    preset = dataclasses.replace(get_preset("gpu-5min"), num_train_shards=2, vocab_size=512)
    with pytest.raises(UserError, match="shard_06542.parquet"):
        prepare_dataset(preset, tmp_path / "cache", data=str(source), progress=quiet)
    assert not (dataset_dir(preset, tmp_path / "cache") / "meta.json").exists()
