"""Every operator's output trains and is scored through the real runner.

A run of the real runner costs ~14 s on two cores, ~10 of them fixed (start-up, export, evaluator),
so the operators are applied in a few bundles: each bundle chains several operators' edits (each
checked applicable on the text so far) into one train.py and runs it once. A failing bundle names
every edit it carries; `tests/target/test_property.py` covers edits one by one with the smoke check.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from autoresearch_rl.experiment import Status
from autoresearch_rl.runner import run_experiment
from autoresearch_rl.target import template_source
from autoresearch_rl.target.space import ActionSpace

TEMPLATE = template_source()
SPACE = ActionSpace.for_source(TEMPLATE)
BUNDLES = 6  # runs of the real runner; operators are dealt round-robin so the larger-model edits spread out


def _boldest(operator: str, source: str) -> int | None:
    """The last applicable argument: usually the boldest move (x2, +1, the last variant)."""
    mask = SPACE.mask(source)
    indices = [a.index for a in SPACE.actions if a.operator == operator and mask[a.index]]
    return indices[-1] if indices else None


OPERATORS = [name for name in SPACE.operators if _boldest(name, TEMPLATE) is not None]


def _bundle(operators: list[str]) -> tuple[str, list[str], list[str]]:
    """The template with each operator's edit applied in turn; the descriptions, and operators left out."""
    source, descriptions, left_out = TEMPLATE, [], []
    for operator in operators:
        index = _boldest(operator, source)
        if index is None:
            left_out.append(operator)
            continue
        edit = SPACE.apply(index, source)
        source = edit.after
        descriptions.append(edit.description)
    return source, descriptions, left_out


def _bundles() -> list[list[str]]:
    dealt = [OPERATORS[i::BUNDLES] for i in range(BUNDLES)]
    out: list[list[str]] = []
    for operators in dealt:
        _, _, left_out = _bundle(operators)
        out.append([op for op in operators if op not in left_out])
        out += [[op] for op in left_out]  # masked after the others' edits: run on its own
    return out


PLAN = _bundles()


def test_every_applicable_operator_is_in_exactly_one_bundle() -> None:
    assert sorted(op for bundle in PLAN for op in bundle) == sorted(OPERATORS)
    assert len(OPERATORS) >= 20  # the template's knobs and structural operators are all here


@pytest.mark.parametrize("operators", PLAN, ids=["+".join(b) for b in PLAN])
def test_operator_output_trains_and_is_scored(operators: list[str], tmp_path: Path, smoke_cache: Path,
                                              smoke_preset) -> None:
    source, descriptions, left_out = _bundle(operators)
    assert not left_out and len(descriptions) == len(operators)
    record = run_experiment(source, tmp_path / "ws", smoke_preset, smoke_cache, seed=0)
    assert record.status is Status.OK, f"{'; '.join(descriptions)}: {record.error}\n{record.log_tail}"
    assert record.val_bpb is not None and record.val_bpb < record.eval_details["uniform_bpb"], descriptions
