"""The mutable target: the train.py template the agent edits, and (later) the edit operators."""

from __future__ import annotations

from pathlib import Path

TEMPLATE_PATH = Path(__file__).with_name("train.py")


def template_source() -> str:
    """The unmodified train.py shipped with the package."""
    return TEMPLATE_PATH.read_text()
