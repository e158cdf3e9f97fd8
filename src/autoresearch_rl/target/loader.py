"""Import a train.py source as a module without running its training (it is guarded by __main__)."""

from __future__ import annotations

import contextlib
import itertools
import sys
import types
from collections.abc import Iterator

_counter = itertools.count()


@contextlib.contextmanager
def imported_source(source: str, filename: str = "train.py") -> Iterator[types.ModuleType]:
    """The executed module, registered in sys.modules while in use (dataclasses need that)."""
    name = f"_arl_train_{next(_counter)}"
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    try:
        exec(compile(source, filename, "exec"), module.__dict__)
        yield module
    finally:
        sys.modules.pop(name, None)
