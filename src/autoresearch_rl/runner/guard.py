"""The controller's own check of the frozen files after a candidate ran and before the evaluator starts.

The evaluator verifies the frozen hashes itself, but a candidate that could write the package
(no sandbox, same user) could also have rewritten the evaluator that does the checking. So the
controller, with code it loaded before the candidate existed, compares

- the package's source and bytecode (`autoresearch_rl/**/*.py`, `__pycache__/*.pyc`) by content,
  against a snapshot taken just before the candidate started,
- the prepared data files by size, mtime and inode against the same snapshot (train.bin may be GBs),
- the campaign's manifest (frozen code and scoring data, by hash), when there is one,

and the runner records INTEGRITY_FAILED without running the evaluator when anything differs.
Candidates run with PYTHONDONTWRITEBYTECODE=1, so no legitimate bytecode write happens meanwhile.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from autoresearch_rl.env import integrity

_PACKAGE = "autoresearch_rl"


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def _stat_key(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


@dataclass(frozen=True)
class FrozenSnapshot:
    """What the frozen files looked like before a candidate ran."""

    package_dir: Path
    dataset_dir: Path
    code: dict[str, str]  # relative path -> sha256 (sources and bytecode of the package)
    data: dict[str, str]  # file name -> size:mtime:inode

    @classmethod
    def take(cls, package_root: Path, dataset_dir: Path) -> FrozenSnapshot:
        package_dir = Path(package_root) / _PACKAGE
        return cls(package_dir=package_dir, dataset_dir=Path(dataset_dir), code=_code_hashes(package_dir),
                   data=_data_stats(Path(dataset_dir)))

    def changes(self, manifest_path: Path | None = None) -> list[str]:
        """What differs now, one readable item per file; empty when nothing does."""
        found = []
        now = _code_hashes(self.package_dir)
        for rel, digest in sorted(self.code.items()):
            if now.get(rel) != digest:
                found.append(f"{_PACKAGE}/{rel} {'was deleted' if rel not in now else 'changed'} while the candidate ran")
        for rel in sorted(set(now) - set(self.code)):
            if rel.endswith(".py"):
                found.append(f"{_PACKAGE}/{rel} appeared while the candidate ran")
        data_now = _data_stats(self.dataset_dir)
        for name, key in sorted(self.data.items()):
            if data_now.get(name) != key:
                found.append(f"data/{name} changed while the candidate ran")
        for name in sorted(set(data_now) - set(self.data)):
            found.append(f"data/{name} appeared while the candidate ran")
        if manifest_path is not None:
            found += _manifest_changes(manifest_path, self.package_dir / "env", self.dataset_dir)
        return found


def _code_hashes(package_dir: Path) -> dict[str, str]:
    hashes = {}
    for root, dirs, files in os.walk(package_dir):
        for name in files:
            if name.endswith((".py", ".pyc")):
                path = Path(root) / name
                hashes[str(path.relative_to(package_dir))] = _sha256(path)
    return hashes


def _data_stats(dataset_dir: Path) -> dict[str, str]:
    try:
        return {p.name: _stat_key(p) for p in dataset_dir.iterdir() if p.is_file()}
    except OSError:
        return {}


def _manifest_changes(manifest_path: Path, env_dir: Path, dataset_dir: Path) -> list[str]:
    """The campaign manifest's check (code and scoring data by hash), computed by the controller."""
    expected = integrity.read_manifest(manifest_path)
    actual = {f"code/{p.name}": integrity.file_sha256(p) for p in sorted(env_dir.glob("*.py"))}
    for name in integrity.SCORING_DATA_FILES:
        path = dataset_dir / name
        actual[f"data/{name}"] = integrity.file_sha256(path) if path.is_file() else "missing"
    return integrity.differences(expected, actual)
