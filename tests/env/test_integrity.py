"""Hashes of the frozen environment: the manifest covers code and data and names exactly what changed."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from autoresearch_rl.env import integrity
from autoresearch_rl.env.data import DATA_FILES, dataset_dir
from autoresearch_rl.env.integrity import (
    build_manifest,
    differences,
    manifest_hash,
    read_manifest,
    write_manifest,
)
from autoresearch_rl.env.presets import Preset

FROZEN_MODULES = ("checkpoint.py", "corpus.py", "data.py", "evaluator.py", "integrity.py", "presets.py",
                  "runtime.py", "tokenizer.py")


@pytest.fixture
def dataset_root(smoke_preset: Preset, smoke_cache: Path, tmp_path: Path) -> Path:
    """A private copy of the prepared data that tests may alter."""
    root = tmp_path / "data"
    shutil.copytree(dataset_dir(smoke_preset, smoke_cache), root)
    return root


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_manifest_covers_frozen_code_and_every_data_file(dataset_root: Path) -> None:
    manifest = build_manifest(dataset_root)
    for name in FROZEN_MODULES:
        assert f"code/{name}" in manifest
    assert {key for key in manifest if key.startswith("data/")} == {f"data/{name}" for name in DATA_FILES}
    assert manifest["data/val.bin"] == hashlib.sha256((dataset_root / "val.bin").read_bytes()).hexdigest()
    runtime_py = Path(integrity.__file__).with_name("runtime.py")
    assert manifest["code/runtime.py"] == hashlib.sha256(runtime_py.read_bytes()).hexdigest()


def test_scoring_manifest_skips_only_the_train_tokens(dataset_root: Path) -> None:
    full, scoring = build_manifest(dataset_root), build_manifest(dataset_root, include_train=False)
    assert set(full) - set(scoring) == {"data/train.bin"}
    assert all(full[key] == scoring[key] for key in scoring)


def test_unchanged_environment_has_no_differences(dataset_root: Path) -> None:
    assert differences(build_manifest(dataset_root), build_manifest(dataset_root)) == []


@pytest.mark.parametrize("name", DATA_FILES)
def test_differences_name_the_changed_data_file(dataset_root: Path, name: str) -> None:
    before = build_manifest(dataset_root)
    flip_last_byte(dataset_root / name)
    after = build_manifest(dataset_root)
    changed = differences(before, after)
    assert len(changed) == 1
    assert changed[0].startswith(f"data/{name} changed")
    assert manifest_hash(after) != manifest_hash(before)


def test_missing_data_file_is_reported(dataset_root: Path) -> None:
    before = build_manifest(dataset_root)
    (dataset_root / "val.bin").unlink()
    after = build_manifest(dataset_root)
    assert after["data/val.bin"] == "missing"
    assert differences(before, after) == [f"data/val.bin changed ({before['data/val.bin'][:8]} -> missing)"]


def test_differences_name_a_changed_code_file(dataset_root: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    code = tmp_path / "env-code"
    shutil.copytree(integrity.ENV_PACKAGE_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(integrity, "ENV_PACKAGE_DIR", code)
    before = build_manifest(dataset_root)
    with open(code / "runtime.py", "a") as f:
        f.write("\nBUDGET_BYPASS = True\n")
    after = build_manifest(dataset_root)
    changed = differences(before, after)
    assert len(changed) == 1 and changed[0].startswith("code/runtime.py changed")
    (code / "evaluator.py").unlink()
    (code / "sneaky.py").write_text("x = 1\n")
    changed = differences(before, build_manifest(dataset_root))
    assert "code/evaluator.py is missing" in changed
    assert "code/sneaky.py is new" in changed


def test_manifest_hash_changes_when_any_file_changes(dataset_root: Path) -> None:
    manifest = build_manifest(dataset_root)
    base = manifest_hash(manifest)
    assert manifest_hash(dict(manifest)) == base
    for key in manifest:
        altered = {**manifest, key: "0" * 64}
        assert manifest_hash(altered) != base, key


def test_manifest_hash_ignores_key_order(dataset_root: Path) -> None:
    manifest = build_manifest(dataset_root)
    assert manifest_hash(dict(reversed(list(manifest.items())))) == manifest_hash(manifest)


def test_manifest_round_trips_through_its_file(dataset_root: Path, tmp_path: Path) -> None:
    manifest = build_manifest(dataset_root)
    path = tmp_path / "manifest.json"
    write_manifest(path, manifest)
    assert read_manifest(path) == manifest
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
