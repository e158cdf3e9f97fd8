"""Presets: lookup by name, the dataset cache key, and the hard deadline."""

from __future__ import annotations

import dataclasses

import pytest

from autoresearch_rl.env.presets import DEFAULT_PRESET, PRESETS, get_preset
from autoresearch_rl.errors import UserError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_get_preset_returns_the_preset_of_that_name(name: str) -> None:
    assert get_preset(name).name == name


def test_default_preset_exists() -> None:
    assert get_preset(DEFAULT_PRESET).corpus == "kjv"


def test_unknown_preset_is_a_user_error_listing_the_known_ones() -> None:
    with pytest.raises(UserError) as excinfo:
        get_preset("gpu-1h")
    message = str(excinfo.value)
    assert "gpu-1h" in message
    for name in PRESETS:
        assert name in message
    assert "\n" not in message


def test_cpu_tiny_and_cpu_smoke_share_their_prepared_data() -> None:
    assert get_preset("cpu-tiny").dataset_id == get_preset("cpu-smoke").dataset_id


def test_dataset_id_differs_when_corpus_vocab_or_shard_count_differs() -> None:
    tiny, gpu = get_preset("cpu-tiny"), get_preset("gpu-5min")
    ids = {
        tiny.dataset_id,
        gpu.dataset_id,
        dataclasses.replace(tiny, vocab_size=2048).dataset_id,
        dataclasses.replace(gpu, num_train_shards=2).dataset_id,
    }
    assert len(ids) == 4


def test_dataset_id_ignores_training_only_settings() -> None:
    tiny = get_preset("cpu-tiny")
    changed = dataclasses.replace(tiny, seq_len=64, time_budget_s=1.0, eval_tokens=10, max_train_tokens=5)
    assert changed.dataset_id == tiny.dataset_id


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_deadline_is_budget_plus_startup_allowance(name: str) -> None:
    preset = get_preset(name)
    assert preset.deadline_s == preset.time_budget_s + preset.startup_allowance_s
    assert preset.deadline_s > preset.time_budget_s


def test_presets_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_preset("cpu-tiny").time_budget_s = 1.0  # type: ignore[misc]
