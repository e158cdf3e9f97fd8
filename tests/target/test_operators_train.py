"""Every operator, applied once to the template, trains and is scored through the real runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoresearch_rl.experiment import Status
from autoresearch_rl.runner import run_experiment
from autoresearch_rl.target import template_source
from autoresearch_rl.target.space import ActionSpace

TEMPLATE = template_source()
SPACE = ActionSpace.for_source(TEMPLATE)
MASK = SPACE.mask(TEMPLATE)


def _first_applicable(operator: str) -> int:
    indices = [a.index for a in SPACE.actions if a.operator == operator and MASK[a.index]]
    return indices[-1]  # the last argument: usually the boldest move (x2, +1, the last variant)


OPERATORS = [name for name in SPACE.operators if any(MASK[a.index] for a in SPACE.actions if a.operator == name)]


@pytest.mark.parametrize("operator", OPERATORS)
def test_operator_output_trains_and_is_scored(operator: str, tmp_path: Path, smoke_cache: Path, smoke_preset) -> None:
    edit = SPACE.apply(_first_applicable(operator), TEMPLATE)
    record = run_experiment(edit.after, tmp_path / "ws", smoke_preset, smoke_cache, seed=0)
    assert record.status is Status.OK, f"{edit.description}: {record.error}\n{record.log_tail}"
    assert record.val_bpb is not None and record.val_bpb < record.eval_details["uniform_bpb"]
