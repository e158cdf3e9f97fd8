"""Shared fixtures: the cpu-smoke data prepared once per test session in a temporary cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autoresearch_rl.env.data import prepare_dataset
from autoresearch_rl.env.presets import Preset, get_preset


# Tests run on two xdist workers on two cores: one thread per training process keeps them from
# fighting over cores (the runner passes ARL_THREADS through to train.py).
os.environ.setdefault("ARL_THREADS", "1")


@pytest.fixture(scope="session")
def smoke_preset() -> Preset:
    return get_preset("cpu-smoke")


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory: pytest.TempPathFactory, smoke_preset: Preset) -> Path:
    """A cache directory holding the prepared cpu-smoke (= cpu-tiny) dataset."""
    cache = tmp_path_factory.mktemp("arl-cache")
    prepare_dataset(smoke_preset, cache)
    return cache


LONG_FIRST = ("test_cli_run.py", "test_controller_kills.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The few minute-long end-to-end tests first: on two xdist workers they then run beside the many short
    ones instead of last, one worker idle (the order within each file is kept)."""
    items.sort(key=lambda item: item.path.name not in LONG_FIRST)
