"""End to end on cpu-smoke: a candidate with 100x learning rates is stopped early and recorded as ABORTED.

Both runs use the template shrunk to one layer and batch 1 (a step takes ~0.04 s instead of ~1 s on
one thread): the runtime prints a progress line per step, so a 3 s budget at template size would
have only three points, none before half the budget.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autoresearch_rl.target.params import apply_params
from autoresearch_rl.env.presets import Preset
from autoresearch_rl.experiment import Status
from autoresearch_rl.runner import run_experiment
from autoresearch_rl.selfeval.abort import AbortConfig
from autoresearch_rl.target import template_source
from autoresearch_rl.target.edits import knobs_of, parse_source

SMALL = {"DEPTH": 1, "BATCH_SIZE": 1}


def test_a_candidate_with_100x_learning_rates_is_aborted_before_half_its_budget(
        tmp_path: Path, smoke_preset: Preset, smoke_cache: Path) -> None:
    base, _ = apply_params(template_source(), SMALL)
    incumbent = run_experiment(base, tmp_path / "incumbent", smoke_preset, smoke_cache)
    assert incumbent.status is Status.OK, incumbent.error
    curve = incumbent.summary["curve"]  # every run keeps its curve: the controller hands it to the next spec
    assert len(curve) >= 4 and all(len(point) == 3 for point in curve)  # elapsed, loss, tokens
    assert [point[2] for point in curve] == sorted({point[2] for point in curve})  # tokens grow step by step

    knobs = knobs_of(parse_source(base))
    bad, description = apply_params(base, {name: knobs[name].value * 100 for name in knobs if name.endswith("_LR")})
    assert "MATRIX_LR" in description
    spec = AbortConfig().spec(incumbent_curve=curve, incumbent_final_loss=incumbent.summary["final_train_loss"],
                              incumbent_val_bpb=incumbent.val_bpb, margin=0.016, budget_s=smoke_preset.time_budget_s)
    record = run_experiment(bad, tmp_path / "candidate", smoke_preset, smoke_cache, abort=spec)

    assert record.status is Status.ABORTED, record.error
    assert record.val_bpb is None and not record.status.scored and not record.status.failed
    s = record.summary
    assert spec.warmup_fraction <= s["aborted_at_fraction"] < 0.5
    assert s["predicted_val_bpb"] > incumbent.val_bpb
    assert s["predicted_val_bpb"] == pytest.approx(s["predicted_final_loss"] * spec.bpb_per_loss)
    assert record.error == s["abort_reason"]
    assert s["curve"] and s["curve"][-1][0] == pytest.approx(record.timings.training)
    assert not (tmp_path / "candidate" / "eval.json").exists()  # never evaluated
    assert record.timings.evaluation == 0.0 and 0 < record.timings.training < smoke_preset.time_budget_s / 2
    assert record.timings.total < incumbent.timings.total
