"""Read what train.py printed: progress lines and the summary block after `---`.

This parses program *output* (a line protocol), never program source. `parse_log` reads a finished
log; `ProgressTail` follows a running one (the early-abort monitor) by reading only appended bytes.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PROGRESS = re.compile(r"^step (\d+) \| elapsed ([\d.]+)s (?:\| progress ([\d.]+)% )?.*?\| loss (\S+)")
_TOKENS = re.compile(r"\| tokens (\d+)")
_SUMMARY_LINE = re.compile(r"^([A-Za-z_][\w]*):\s*(.*)$")
_EXCEPTION = re.compile(r"^(\w+(?:\.\w+)*(?:Error|Exception|Interrupt)|MemoryError|SystemExit)\b.*")


@dataclass(frozen=True)
class ProgressPoint:
    step: int
    elapsed: float
    loss: float
    percent: float | None = None  # budget spent, as the frozen runtime reports it
    tokens: int | None = None  # training tokens so far, when the line says


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


def progress_point(line: str) -> ProgressPoint | None:
    """The progress point a line reports, or None when it is not a progress line."""
    m = _PROGRESS.match(line)
    if m is None:
        return None
    tokens = _TOKENS.search(line, m.end())
    return ProgressPoint(int(m.group(1)), float(m.group(2)), _loss(m.group(4)),
                         float(m.group(3)) if m.group(3) else None, int(tokens.group(1)) if tokens else None)


class ProgressTail:
    """Progress points of a log that is still being written, a call at a time.

    Each `read_new` reads only the bytes appended since the previous call (at most `max_read` of
    them, the rest next time), so following a run costs the controller little and the candidate
    nothing. A line without its newline yet is kept back until it is complete.
    """

    _MAX_PARTIAL = 64 * 1024  # a longer unterminated line is not a progress line: drop it

    def __init__(self, path: Path, offset: int = 0, max_read: int = 8 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.offset = offset  # bytes of the file consumed so far
        self._max_read = max_read
        self._partial = b""

    def read_new(self) -> list[ProgressPoint]:
        try:
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_size < self.offset:  # truncated under us: start again
                    self.offset, self._partial = 0, b""
                f.seek(self.offset)
                data = f.read(self._max_read)
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, rest = (self._partial + data).split(b"\n")
        self._partial = rest if len(rest) <= self._MAX_PARTIAL else b""
        points = (progress_point(line.decode(errors="replace")) for line in lines)
        return [p for p in points if p is not None]


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
        if point := progress_point(line):
            progress.append(point)
        elif in_summary and (m := _SUMMARY_LINE.match(line)):
            summary[m.group(1)] = _value(m.group(2).strip())
        if _EXCEPTION.match(line):
            last_exception = line.strip()[:500]
    return ParsedLog(progress=progress, summary=summary, tail="\n".join(lines[-tail_lines:]), last_exception=last_exception)
