"""Errors a user can cause. The CLI turns them into one line and exit code 2, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix (bad preset, missing data, unwritable directory...).

    The message says what is wrong and how to fix it, in one line.
    """
