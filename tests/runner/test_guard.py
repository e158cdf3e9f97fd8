"""The controller's own frozen-file check: what a candidate changed while it ran is named, nothing else is."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import autoresearch_rl
from autoresearch_rl.env import integrity
from autoresearch_rl.env.data import dataset_dir
from autoresearch_rl.runner.guard import FrozenSnapshot


@pytest.fixture
def frozen(tmp_path: Path, smoke_preset, smoke_cache) -> tuple[Path, Path]:
    """A private package copy (with one bytecode file) and a private dataset copy."""
    package_root = tmp_path / "src"
    shutil.copytree(Path(autoresearch_rl.__file__).parent, package_root / "autoresearch_rl",
                    ignore=shutil.ignore_patterns("__pycache__"))
    pycache = package_root / "autoresearch_rl" / "env" / "__pycache__"
    pycache.mkdir()
    (pycache / "evaluator.cpython-311.pyc").write_bytes(b"bytecode")
    data = dataset_dir(smoke_preset, tmp_path / "cache")
    shutil.copytree(dataset_dir(smoke_preset, smoke_cache), data)
    return package_root, data


def test_nothing_changed_is_clean(frozen: tuple[Path, Path]) -> None:
    package_root, data = frozen
    assert FrozenSnapshot.take(package_root, data).changes() == []


@pytest.mark.parametrize(("relative", "expected"), [
    ("env/evaluator.py", "autoresearch_rl/env/evaluator.py changed"),
    ("__init__.py", "autoresearch_rl/__init__.py changed"),  # imported by the evaluator: not only env/ matters
    ("env/__pycache__/evaluator.cpython-311.pyc", "evaluator.cpython-311.pyc changed"),  # planted bytecode
])
def test_a_changed_package_file_is_named(frozen: tuple[Path, Path], relative: str, expected: str) -> None:
    package_root, data = frozen
    snapshot = FrozenSnapshot.take(package_root, data)
    path = package_root / "autoresearch_rl" / relative
    path.write_bytes(path.read_bytes() + b"\n# planted\n")
    assert any(expected in item for item in snapshot.changes())


def test_deleted_and_new_sources_are_named_new_bytecode_is_not(frozen: tuple[Path, Path]) -> None:
    package_root, data = frozen
    snapshot = FrozenSnapshot.take(package_root, data)
    (package_root / "autoresearch_rl" / "env" / "integrity.py").unlink()
    (package_root / "autoresearch_rl" / "env" / "sneaky.py").write_text("x = 1\n")
    (package_root / "autoresearch_rl" / "env" / "__pycache__" / "data.cpython-311.pyc").write_bytes(b"new")
    changes = snapshot.changes()
    assert any("env/integrity.py was deleted" in c for c in changes)
    assert any("env/sneaky.py appeared" in c for c in changes)
    assert not any("data.cpython-311.pyc" in c for c in changes)  # another process compiling a module is normal


def test_touched_data_and_manifest_differences_are_named(frozen: tuple[Path, Path], tmp_path: Path) -> None:
    package_root, data = frozen
    manifest = tmp_path / "manifest.json"
    integrity.write_manifest(manifest, integrity.build_manifest(data))
    snapshot = FrozenSnapshot.take(package_root, data)
    assert snapshot.changes(manifest) == []
    (data / "val.bin").write_bytes((data / "val.bin").read_bytes()[::-1])
    changes = snapshot.changes(manifest)
    assert "data/val.bin changed while the candidate ran" in changes
    assert any(c.startswith("data/val.bin changed (") for c in changes)  # and by hash, against the campaign
