"""Hyperparameter operators: minimal, readable, range-respecting edits of constants."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from autoresearch_rl.target import template_source
from autoresearch_rl.target.edits import (PARSE_CACHE_SIZE, EditError, apply_edit, code_after, hyperparameter_operators,
                                          parse_source)
from autoresearch_rl.target.knobs import discover_knobs

USER_SCRIPT = (Path(__file__).parent / "user_scripts" / "mlp_train.py").read_text()


def op(source: str, name: str):
    return next(o for o in hyperparameter_operators(source) if o.name == name)


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    a, b = before.splitlines(), after.splitlines()
    assert len(a) == len(b)
    return [(x, y) for x, y in zip(a, b) if x != y]


def test_scale_changes_one_line_and_keeps_its_comment() -> None:
    source = template_source()
    edit = apply_edit(source, op(source, "scale:MATRIX_LR"), "x1.2")
    assert changed_lines(source, edit.after) == [
        ("MATRIX_LR = 0.02  # search: log 0.001..0.2", "MATRIX_LR = 0.024  # search: log 0.001..0.2")]
    assert edit.description == "MATRIX_LR 0.02 -> 0.024 (x1.2)"
    assert edit.diff.count("\n-MATRIX_LR") == 1 and edit.diff.count("\n+MATRIX_LR") == 1


def test_edits_that_leave_the_declared_range_are_masked() -> None:
    source = "LR = 0.15  # search: log 0.001..0.2\nN = 12  # search: int 1..12\n"
    module = cst.parse_module(source)
    assert not op(source, "scale:LR").applicable(module, "x1.4")  # 0.21 > 0.2
    assert op(source, "scale:LR").applicable(module, "x1.2")  # 0.18
    assert not op(source, "step:N").applicable(module, "+1")
    with pytest.raises(EditError, match="not applicable"):
        apply_edit(source, op(source, "step:N"), "+1")


def test_the_current_choice_is_masked_and_others_apply() -> None:
    source = template_source()
    module = cst.parse_module(source)
    heads = op(source, "set:HEAD_DIM")
    assert [heads.applicable(module, a) for a in heads.args] == [True, False, True, True]
    edit = apply_edit(source, heads, "64")
    assert discover_knobs(cst.parse_module(edit.after))["HEAD_DIM"].value == 64


def test_shift_moves_a_linear_knob_off_zero() -> None:
    source = template_source()
    edit = apply_edit(source, op(source, "shift:WARMUP_FRAC"), "+0.1R")
    assert discover_knobs(cst.parse_module(edit.after))["WARMUP_FRAC"].value == pytest.approx(0.03)
    assert not op(source, "shift:WARMUP_FRAC").applicable(cst.parse_module(source), "-0.1R")


def test_pow2_keeps_integers_integral() -> None:
    source = template_source()
    edit = apply_edit(source, op(source, "pow2:BATCH_SIZE"), "/2")
    assert "BATCH_SIZE = 8  #" in edit.after


def test_generic_operators_cover_a_user_script() -> None:
    names = {o.name for o in hyperparameter_operators(USER_SCRIPT)}
    assert names == {"pow2:HIDDEN", "scale:LEARNING_RATE", "step:BATCH", "set:USE_BIAS", "set:ACTIVATION", "shift:MOMENTUM"}
    edit = apply_edit(USER_SCRIPT, op(USER_SCRIPT, "set:USE_BIAS"), "False")
    assert changed_lines(USER_SCRIPT, edit.after) == [("USE_BIAS = True", "USE_BIAS = False")]
    edit = apply_edit(USER_SCRIPT, op(USER_SCRIPT, "set:ACTIVATION"), "'gelu'")
    assert changed_lines(USER_SCRIPT, edit.after) == [
        ('ACTIVATION = "relu"  # search: choice "relu", "gelu", "tanh"', 'ACTIVATION = "gelu"  # search: choice "relu", "gelu", "tanh"')]


def test_unknown_argument_is_an_edit_error() -> None:
    source = template_source()
    with pytest.raises(EditError, match="no argument"):
        apply_edit(source, op(source, "scale:MATRIX_LR"), "x3")


@pytest.mark.parametrize("source", [template_source(), USER_SCRIPT], ids=["template", "user_script"])
def test_cached_tree_of_a_hyperparameter_edit_is_the_parse_of_its_text(source: str) -> None:
    """apply_edit patches the text and caches the edited tree for the next step: both must be what a parse gives."""
    module = cst.parse_module(source)
    for operator in hyperparameter_operators(source):
        for arg in operator.args:
            if not operator.applicable(module, arg):
                continue
            edit = apply_edit(source, operator, arg)
            assert edit.after == operator.apply(module, arg)[0].code, (operator.name, arg)
            assert parse_source(edit.after).deep_equals(cst.parse_module(edit.after)), (operator.name, arg)


def test_code_after_renders_the_whole_module_unless_one_unique_statement_changed() -> None:
    source = "X = 1\nY = 2\nX = 1\n"
    module = cst.parse_module(source)
    first, second = module.body[0], module.body[2]
    one = module.with_changes(body=[first, module.body[1], cst.parse_statement("X = 3")])
    assert code_after(source, module, one) == "X = 1\nY = 2\nX = 3\n"  # "X = 1" occurs twice: full render
    both = module.with_changes(body=[cst.parse_statement("Y = 3"), cst.parse_statement("Y = 4"), second])
    assert code_after(source, module, both) == "Y = 3\nY = 4\nX = 1\n"
    unique = module.with_changes(body=[first, cst.parse_statement("Y = 5"), second])
    assert code_after(source, module, unique) == "X = 1\nY = 5\nX = 1\n"
    no_newline = cst.parse_module("X = 1\nY = 2")
    edited = no_newline.with_changes(body=[no_newline.body[0], cst.parse_statement("Y = 7")])
    assert code_after("X = 1\nY = 2", no_newline, edited) == edited.code == "X = 1\nY = 7"


def test_parse_cache_is_bounded_and_returns_the_same_tree() -> None:
    sources = [f"X = {i}\n" for i in range(PARSE_CACHE_SIZE + 5)]
    trees = [parse_source(s) for s in sources]
    assert parse_source(sources[-1]) is trees[-1]
    assert parse_source(sources[0]) is not trees[0]  # evicted, parsed again
    assert parse_source(sources[0]).deep_equals(trees[0])
