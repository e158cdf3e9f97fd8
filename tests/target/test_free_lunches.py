"""No free lunches in the edit space: edits that cannot change what is trained are never offered or run."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import pytest

from autoresearch_rl.target.params import apply_params
from autoresearch_rl.env import runtime
from autoresearch_rl.target import template_source
from autoresearch_rl.target.edits import EditError, replace_constant, parse_source
from autoresearch_rl.target.knobs import AnnotationError, parse_spec
from autoresearch_rl.target.space import ActionSpace

TEMPLATE = template_source()


def _set(source: str, **values: object) -> str:
    module = parse_source(source)
    for name, value in values.items():
        module = replace_constant(module, name, value)
    return module.code


def _allowed(space: ActionSpace, source: str, operator: str) -> set[str]:
    mask = space.mask(source)
    return {a.arg for a in space.actions if a.operator == operator and mask[a.index]}


def test_compile_is_not_offered_on_cpu_but_is_on_cuda() -> None:
    source = _set(TEMPLATE, COMPILE="never")
    assert _allowed(ActionSpace.for_source(source, device="cpu"), source, "set:COMPILE") == set()
    assert _allowed(ActionSpace.for_source(source, device="cuda"), source, "set:COMPILE") == {"'auto'"}
    cpu = ActionSpace.for_source(source, device="cpu")
    with pytest.raises(EditError, match="only has an effect on cuda"):
        cpu.apply(cpu.index("set:COMPILE", "'auto'"), source)


def test_micro_batch_choices_that_do_not_divide_the_batch_are_masked() -> None:
    space = ActionSpace.for_source(TEMPLATE, device="cpu")
    source = _set(TEMPLATE, BATCH_SIZE=16)
    assert _allowed(space, source, "set:MICRO_BATCH_SIZE") == {"4", "8", "16"}  # 0 (the current value) is no move
    # with micro 16, halving the batch would leave a micro batch larger than the batch: masked
    source = _set(TEMPLATE, BATCH_SIZE=16, MICRO_BATCH_SIZE=16)
    assert _allowed(space, source, "pow2:BATCH_SIZE") == {"x2"}
    with pytest.raises(EditError, match="divides"):
        space.apply(space.index("pow2:BATCH_SIZE", "/2"), source)


def test_a_whole_configuration_that_breaks_divides_is_refused_without_a_run() -> None:
    with pytest.raises(EditError, match="divides"):
        apply_params(TEMPLATE, {"BATCH_SIZE": 8, "MICRO_BATCH_SIZE": 16})
    source, _ = apply_params(TEMPLATE, {"BATCH_SIZE": 32, "MICRO_BATCH_SIZE": 16})
    assert "MICRO_BATCH_SIZE = 16" in source


USER_SCRIPT = '''
LEARNING_RATE = 0.01
UNUSED_WIDTH = 64
READ_IN_FUNCTION = 3


def main():
    print(LEARNING_RATE * READ_IN_FUNCTION)
'''


def test_a_constant_no_code_reads_is_never_offered_or_run() -> None:
    space = ActionSpace.for_source(USER_SCRIPT)
    mask = space.mask(USER_SCRIPT)
    offered = {a.operator for a in space.actions if mask[a.index]}
    assert "scale:LEARNING_RATE" in offered and "step:READ_IN_FUNCTION" in offered
    assert not any(op.endswith(":UNUSED_WIDTH") for op in offered)
    with pytest.raises(EditError, match="never read"):
        space.apply(space.index("pow2:UNUSED_WIDTH", "x2"), USER_SCRIPT)


@pytest.mark.parametrize(("operator", "variant", "constant"), [
    ("softcap", "off", "LOGIT_SOFTCAP"), ("position", "learned", "ROPE_BASE"),
    ("tie_embeddings", "on", "EMBEDDING_LR"), ("matrix_optimizer", "adamw", "MUON_MOMENTUM")])
def test_a_constant_a_structural_variant_leaves_without_effect_is_never_offered(operator: str, variant: str,
                                                                                constant: str) -> None:
    space = ActionSpace.for_source(TEMPLATE, device="cpu")
    before = {a.operator for a in space.actions if space.mask(TEMPLATE)[a.index]}
    assert any(op.endswith(f":{constant}") for op in before)
    source = space.apply(space.index(operator, variant), TEMPLATE).after
    after = {a.operator for a in space.actions if space.mask(source)[a.index]}
    assert not any(op.endswith(f":{constant}") for op in after)  # still read by the code, but without effect
    moves = [a for a in space.actions if a.operator.endswith(f":{constant}")]
    with pytest.raises(EditError, match="no effect in its variants"):
        space.apply(moves[0].index, source)


def test_constraint_clauses_parse_and_bad_ones_are_one_line_errors() -> None:
    spec = parse_spec("M", '# search: choice 0, 4, 8; divides BATCH; device cuda, mps', 0)
    assert spec is not None and spec.divides == "BATCH" and spec.devices == ("cuda", "mps") and spec.choices == (0, 4, 8)
    with pytest.raises(AnnotationError, match="M: unknown clause"):
        parse_spec("M", "# search: int 1..4; sometimes", 1)
    with pytest.raises(AnnotationError, match="UPPER_CASE"):
        parse_spec("M", "# search: int 1..4; divides batch", 1)


def _rows_per_step(source: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], int]:
    """Run train.py in-process in smoke mode: the batches drawn before each optimizer step, and the rows asked for each.

    (Smoke mode hands out 2-row batches whatever is asked, so rows are counted as asked, times batches drawn.)
    """
    draws_per_step: list[int] = []
    draws = 0
    asked: list[int] = []
    real_step_done, real_batches = runtime.TrainContext.step_done, runtime.TrainContext.train_batches

    def step_done(self, step, loss, tokens):  # type: ignore[no-untyped-def]
        nonlocal draws
        draws_per_step.append(draws)
        draws = 0
        return real_step_done(self, step, loss, tokens=tokens)

    def train_batches(self, batch_size):  # type: ignore[no-untyped-def]
        nonlocal draws
        asked.append(batch_size)
        for pair in real_batches(self, batch_size):
            draws += 1
            yield pair

    monkeypatch.setattr(runtime.TrainContext, "step_done", step_done)
    monkeypatch.setattr(runtime.TrainContext, "train_batches", train_batches)
    with tempfile.TemporaryDirectory() as tmp:
        for key, value in {"ARL_SMOKE": "1", "ARL_DEVICE": "cpu", "ARL_SEED": "0",
                           "ARL_CHECKPOINT_DIR": str(Path(tmp) / "ckpt")}.items():
            monkeypatch.setenv(key, value)
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(source, "train.py", "exec"), {"__name__": "__main__"})
    assert len(asked) == 1
    return draws_per_step, asked[0]


@pytest.mark.parametrize("micro", [0, 2, 4, 8])
def test_micro_batch_size_never_changes_the_rows_of_an_optimizer_step(micro: int,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    draws, rows_each = _rows_per_step(_set(TEMPLATE, BATCH_SIZE=8, MICRO_BATCH_SIZE=micro), monkeypatch)
    assert draws and all(d * rows_each == 8 for d in draws)  # micro batches of one step add up to BATCH_SIZE
    assert rows_each == (micro or 8)


def test_a_micro_batch_that_does_not_divide_the_batch_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="must divide BATCH_SIZE"):
        _rows_per_step(_set(TEMPLATE, BATCH_SIZE=8, MICRO_BATCH_SIZE=16), monkeypatch)



def test_code_hash_ignores_comments_and_layout_but_not_values() -> None:
    from autoresearch_rl.target.tokens import code_fingerprint as code_hash

    a = "LR = 0.02  # search: log 0.001..0.2\nprint(LR)\n"
    assert code_hash(a) == code_hash("# a note\nLR = 0.020\n\nprint( LR )\n")
    assert code_hash(a) != code_hash("LR = 0.03\nprint(LR)\n")
