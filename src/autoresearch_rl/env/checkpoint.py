"""The hand-over from train.py to the evaluator: an exported program, or weights plus a builder.

The preferred format is `torch.export` with a dynamic batch dimension: the evaluator runs the graph
and never imports candidate Python. A model that cannot be exported falls back to safetensors
weights plus the name of a builder function in train.py; the evaluator then imports train.py and
records that it did. `meta.json` is written last and atomically: its presence means complete.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

EXPORT_FILE = "model.pt2"
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "meta.json"


@dataclass(frozen=True)
class SavedCheckpoint:
    format: str  # "export" or "state_dict"
    path: Path
    export_error: str = ""


def _atomic_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    os.replace(tmp, path)


def save(model: torch.nn.Module, directory: Path, *, model_config: dict[str, Any], seq_len: int, vocab_size: int,
         device: torch.device, build_model: str = "build_model") -> SavedCheckpoint:
    """Export `model` for scoring; fall back to weights + builder when export fails."""
    directory = Path(directory)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    module = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    module.eval()
    meta: dict[str, Any] = {"seq_len": seq_len, "vocab_size": vocab_size, "device": str(device),
                            "model_config": model_config}
    example = torch.randint(0, vocab_size, (2, seq_len), device=device)
    try:
        batch = torch.export.Dim("batch", min=1, max=65_536)
        with torch.no_grad():
            program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},), strict=False)
        torch.export.save(program, str(directory / EXPORT_FILE))
        meta["format"] = "export"
        error = ""
    except Exception as exc:  # noqa: BLE001 - any export failure means the fallback format
        from safetensors.torch import save_model

        save_model(module, str(directory / WEIGHTS_FILE))
        meta.update(format="state_dict", build_model=build_model, export_error=f"{type(exc).__name__}: {exc}"[:2000])
        error = meta["export_error"]
    _atomic_json(directory / META_FILE, meta)
    return SavedCheckpoint(format=meta["format"], path=directory, export_error=error)


def read_meta(directory: Path) -> dict[str, Any] | None:
    """The checkpoint's meta.json, or None when the run never finished saving."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def load(directory: Path, device: torch.device, train_py: Path | None = None) -> torch.nn.Module:
    """Rebuild the model for inference; imports candidate code only for the state_dict fallback."""
    directory = Path(directory)
    meta = read_meta(directory)
    if meta is None:
        raise FileNotFoundError(f"no {META_FILE} in {directory}")
    if meta["format"] == "export":
        program = torch.export.load(str(directory / EXPORT_FILE))
        return program.module()
    if train_py is None:
        raise ValueError("state_dict checkpoints need the candidate's train.py to rebuild the model")
    import importlib.util
    import sys

    from safetensors.torch import load_model

    name = f"_arl_candidate_{os.getpid()}"
    spec = importlib.util.spec_from_file_location(name, train_py)
    assert spec is not None and spec.loader is not None
    candidate = importlib.util.module_from_spec(spec)
    sys.modules[name] = candidate  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(candidate)  # train.py guards its training behind __main__
        model = getattr(candidate, meta["build_model"])(meta["model_config"]).to(device)
    finally:
        sys.modules.pop(name, None)
    load_model(model, str(directory / WEIGHTS_FILE), device=str(device))
    return model.eval()
