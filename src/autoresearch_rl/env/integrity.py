"""Hashes of the frozen environment: its code and its prepared data.

A campaign records the manifest when it is created; the evaluator recomputes it before scoring and
refuses to score when anything changed, saying exactly which files. The training split can be
large (GBs for gpu-5min), so the per-evaluation check covers everything that decides a score
(code, tokenizer, token bytes, val/test tokens) and the full check adds the training tokens.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from autoresearch_rl.env import data as env_data

ENV_PACKAGE_DIR = Path(__file__).resolve().parent
SCORING_DATA_FILES = ("tokenizer.json", "token_bytes.safetensors", "val.bin", "test.bin", "meta.json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(dataset_root: Path, *, include_train: bool = True) -> dict[str, str]:
    """{'code/<file>': sha256, 'data/<file>': sha256} for the frozen code and the prepared data."""
    manifest = {f"code/{p.name}": file_sha256(p) for p in sorted(ENV_PACKAGE_DIR.glob("*.py"))}
    names = env_data.DATA_FILES if include_train else SCORING_DATA_FILES
    for name in names:
        path = Path(dataset_root) / name
        manifest[f"data/{name}"] = file_sha256(path) if path.is_file() else "missing"
    return manifest


def manifest_hash(manifest: dict[str, str]) -> str:
    """One short hash naming the whole frozen environment (recorded with the campaign)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


def differences(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """Human-readable list of what changed; only keys present in `actual` are compared."""
    changed = []
    for key in sorted(actual):
        want = expected.get(key)
        if want is None:
            changed.append(f"{key} is new")
        elif want != actual[key]:
            changed.append(f"{key} changed ({want[:8]} -> {actual[key][:8]})")
    for key in sorted(set(expected) - set(actual)):
        if key.startswith("code/"):
            changed.append(f"{key} is missing")
    return changed


def write_manifest(path: Path, manifest: dict[str, str]) -> None:
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    tmp.replace(path)


def read_manifest(path: Path) -> dict[str, str]:
    return json.loads(Path(path).read_text())
