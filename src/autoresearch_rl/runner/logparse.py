"""Read what train.py printed: progress lines and the summary block after `---`.

This parses program *output* (a line protocol), never program source.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PROGRESS = re.compile(r"^step (\d+) \| elapsed ([\d.]+)s (?:\| progress ([\d.]+)% )?.*?\| loss (\S+)")
_SUMMARY_LINE = re.compile(r"^([A-Za-z_][\w]*):\s*(.*)$")
_EXCEPTION = re.compile(r"^(\w+(?:\.\w+)*(?:Error|Exception|Interrupt)|MemoryError|SystemExit)\b.*")


@dataclass(frozen=True)
class ProgressPoint:
    step: int
    elapsed: float
    loss: float
    percent: float | None = None  # budget spent, as the frozen runtime reports it


@dataclass(frozen=True)
class ParsedLog:
    progress: list[ProgressPoint]
    summary: dict[str, Any]
    tail: str
    last_exception: str  # e.g. "RuntimeError: shape mismatch", empty when none

    @property
    def saw_non_finite_loss(self) -> bool:
        return any(not math.isfinite(p.loss) for p in self.progress)


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _loss(text: str) -> float:
    try:
        return float(text)  # "nan" and "inf" parse too, and count as non-finite
    except ValueError:
        return float("nan")


def parse_log(path: Path, tail_lines: int = 40) -> ParsedLog:
    """Progress points, the last summary block, the log tail and the last exception line."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except FileNotFoundError:
        lines = []
    progress: list[ProgressPoint] = []
    summary: dict[str, Any] = {}
    in_summary = False
    last_exception = ""
    for line in lines:
        if line.strip() == "---":
            in_summary, summary = True, {}
            continue
        if m := _PROGRESS.match(line):
            percent = float(m.group(3)) if m.group(3) else None
            progress.append(ProgressPoint(int(m.group(1)), float(m.group(2)), _loss(m.group(4)), percent))
        elif in_summary and (m := _SUMMARY_LINE.match(line)):
            summary[m.group(1)] = _value(m.group(2).strip())
        if _EXCEPTION.match(line):
            last_exception = line.strip()[:500]
    return ParsedLog(progress=progress, summary=summary, tail="\n".join(lines[-tail_lines:]), last_exception=last_exception)
