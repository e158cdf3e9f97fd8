"""The action space keeps its indexing while the incumbent changes; masks track the incumbent."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoresearch_rl.target import template_source
from autoresearch_rl.target.edits import EditError
from autoresearch_rl.target.space import ActionSpace

USER_SCRIPT = (Path(__file__).parent / "user_scripts" / "mlp_train.py").read_text()


def test_indexing_is_stable_as_the_incumbent_changes() -> None:
    source = template_source()
    space = ActionSpace.for_source(source)
    actions_before = list(space.actions)
    edited = space.apply(space.index("set:HEAD_DIM", "64"), source).after
    mask_before, mask_after = space.mask(source), space.mask(edited)
    assert len(mask_after) == len(mask_before) == len(space)
    assert space.actions == actions_before
    assert mask_before != mask_after
    assert mask_after[space.index("set:HEAD_DIM", "32")] and not mask_before[space.index("set:HEAD_DIM", "32")]
    assert not mask_after[space.index("set:HEAD_DIM", "64")]
    assert [a.index for a in space.actions] == list(range(len(space)))


def test_masked_actions_are_not_applicable() -> None:
    source = template_source()
    space = ActionSpace.for_source(source)
    mask = space.mask(source)
    masked = [i for i, ok in enumerate(mask) if not ok]
    assert masked, "the template's current values should be masked somewhere"
    for index in masked:
        with pytest.raises(EditError):
            space.apply(index, source)


def test_user_script_gets_generic_operators_only() -> None:
    space = ActionSpace.for_source(USER_SCRIPT)
    assert {a.kind for a in space.actions} == {"hyperparameter"}
    mask = space.mask(USER_SCRIPT)
    assert any(mask)


def test_template_space_includes_structural_operators() -> None:
    space = ActionSpace.for_source(template_source())
    structural = {a.operator for a in space.actions if a.kind == "structural"}
    assert len(structural) >= 10


def test_unknown_action_is_an_edit_error() -> None:
    with pytest.raises(EditError):
        ActionSpace.for_source(template_source()).index("scale:NOPE", "x2")


def test_cached_masks_equal_fresh_ones_and_are_copies() -> None:
    source = template_source()
    space = ActionSpace.for_source(source)
    first = space.mask(source)
    first[0] = not first[0]  # a caller's changes do not leak into the cache
    assert space.mask(source) != first
    fresh = ActionSpace.for_source(source)
    edited = space.apply(space.index("activation", "swiglu"), source).after
    assert space.mask(edited) == fresh.mask(edited)
