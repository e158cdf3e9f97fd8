"""The train.py a command works on (the template or --source, checked to compile), its action space, and the
device its candidates will train on."""

from __future__ import annotations

import os
from pathlib import Path

from autoresearch_rl.errors import UserError


def candidate_device(preset_device: str, gpus_per_worker: float = 0.0) -> str:
    """The device type candidates will train on ("cpu" or "cuda"), as the frozen runtime will pick it."""
    wanted = os.environ.get("ARL_DEVICE") or preset_device
    if wanted == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() or gpus_per_worker > 0 else "cpu"
    return wanted.split(":")[0]


def _read_source(path: str | None) -> str:
    if path is None:
        from autoresearch_rl.target import template_source

        return template_source()
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--source {file} does not exist; pass the path of a train.py")
    source = file.read_text()
    try:
        compile(source, str(file), "exec")
    except SyntaxError as exc:
        raise UserError(f"{file} does not compile (line {exc.lineno}: {exc.msg}); fix it first") from None
    return source


def _space(source: str):
    from autoresearch_rl.target.knobs import AnnotationError
    from autoresearch_rl.target.space import ActionSpace

    try:
        return ActionSpace.for_source(source)
    except AnnotationError as exc:
        raise UserError(f"bad # search: annotation: {exc}") from None
