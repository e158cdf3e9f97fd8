"""Property: any random walk of applicable edits from the template stays valid code that runs a step."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoresearch_rl.target import template_source
from autoresearch_rl.target.edits import EditError
from autoresearch_rl.target.space import ActionSpace
from autoresearch_rl.target.smoke import smoke_check

TEMPLATE = template_source()
SPACE = ActionSpace.for_source(TEMPLATE)


def _changed_lines(before: str, after: str) -> int:
    a, b = before.splitlines(), after.splitlines()
    return sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.integers(min_value=0, max_value=2**31), min_size=1, max_size=20))
def test_random_edit_sequences_compile_and_pass_the_smoke_check(draws: list[int]) -> None:
    source = TEMPLATE
    for draw in draws:
        rng = random.Random(draw)
        mask = SPACE.mask(source)
        applicable = [i for i, ok in enumerate(mask) if ok]
        masked = [i for i, ok in enumerate(mask) if not ok]
        assert applicable, "every reachable train.py must leave some action open"
        if masked:  # a masked action is never applicable
            try:
                SPACE.apply(rng.choice(masked), source)
            except EditError:
                pass
            else:
                raise AssertionError("a masked action applied")
        edit = SPACE.apply(rng.choice(applicable), source)
        assert edit.after != source
        if edit.kind == "hyperparameter":  # minimal diff: exactly the constant's line
            assert _changed_lines(source, edit.after) == 1, edit.diff
        source = edit.after
    compile(source, "train.py", "exec")
    result = smoke_check(source, in_process=True)
    assert result.ok, f"{result.error}\nafter edits:\n{source}"
