"""Structural operators: every edit of the template builds a causal, trainable, exportable GPT; edits are
local, invert exactly, compose, and are masked (never raise) where the code has another shape."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from types import ModuleType

import libcst as cst
import pytest
import torch
import torch.nn.functional as F

from autoresearch_rl.target import template_source
from autoresearch_rl.target.edits import EditError, apply_edit, hyperparameter_operators
from autoresearch_rl.target.loader import imported_source
from autoresearch_rl.target.structural import StructuralOperator, structural_operators

TEMPLATE = template_source()
MODULE = cst.parse_module(TEMPLATE)
OPERATORS: dict[str, StructuralOperator] = {op.name: op for op in structural_operators()}  # type: ignore[misc]
CASES = [(op.name, arg) for op in OPERATORS.values() for arg in op.args if op.applicable(MODULE, arg)]
VOCAB, T = 64, 32

# What each operator may touch: top-level functions, and methods as "Class.method".
TOUCHES = {
    "activation": {"MLP.__init__", "MLP.forward"},
    "norm": {"norm"},
    "qk_norm": {"CausalSelfAttention.forward"},
    "position": {"rotary_tables", "apply_rotary", "CausalSelfAttention.forward", "Block.forward", "GPT.__init__",
                 "GPT.reset_parameters", "GPT.forward", "build_optimizers"},
    "tie_embeddings": {"GPT.__init__", "GPT.reset_parameters", "build_optimizers"},
    "softcap": {"GPT.forward"},
    "matrix_optimizer": {"build_optimizers"},
    "lr_schedule": {"lr_multiplier"},
    "block_layout": {"Block.forward"},
    "zero_init": {"GPT.reset_parameters"},
    "sliding_window": {"local_causal_mask", "CausalSelfAttention.forward", "GPT.__init__"},
}

# A small user script: constants and a loop, no GPT. Every structural action must be masked on it.
USER_SCRIPT = '''\
"""Fit a line."""
import torch

LR = 0.1
STEPS = 100


def norm(x):
    return x / x.norm()


class MLP(torch.nn.Module):
    def forward(self, x):
        return x


def main() -> None:
    w = torch.zeros(1, requires_grad=True)
    for _ in range(STEPS):
        loss = (w - 3.0).square().sum()
        loss.backward()


if __name__ == "__main__":
    main()
'''


def edited(name: str, arg: str, source: str = TEMPLATE) -> str:
    return apply_edit(source, OPERATORS[name], arg).after


@contextmanager
def built(source: str) -> Iterator[tuple[ModuleType, torch.nn.Module]]:
    """The edited train.py imported, and the model its constants describe (vocab 64, seq 32)."""
    with imported_source(source) as train:
        torch.manual_seed(0)
        yield train, train.build_model(asdict(train.make_config(VOCAB, T)))


def ids(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, T), generator=torch.Generator().manual_seed(seed))


def check_trains(train: ModuleType, model: torch.nn.Module) -> None:
    """Finite logits of the right shape; every parameter in exactly one optimiser; one step moves them."""
    logits = model(ids())
    assert logits.shape == (2, T, VOCAB) and torch.isfinite(logits).all()
    optimizers = train.build_optimizers(model)
    grouped = [id(p) for opt in optimizers for g in opt.param_groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    F.cross_entropy(logits.reshape(-1, VOCAB), ids(seed=2).reshape(-1)).backward()
    for opt in optimizers:
        opt.step()
    for n, p in model.named_parameters():
        assert torch.isfinite(p).all(), n
        if p.grad is not None and p.grad.abs().sum() > 0:
            assert not torch.equal(p, before[n]), f"{n} has a gradient but did not move"


def check_causal(model: torch.nn.Module) -> None:
    """With every weight random (zero-init projections would hide attention), token t moves logits >= t only."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.3)
    model.eval()
    x = ids()
    with torch.no_grad():
        base = model(x)
        for t in (5, 20):
            changed = x.clone()
            changed[:, t] = (x[:, t] + 1) % VOCAB
            after = model(changed)
            torch.testing.assert_close(after[:, :t], base[:, :t], rtol=0, atol=1e-5)
            assert (after[:, t] - base[:, t]).abs().max() > 1e-4


def check_exports(model: torch.nn.Module) -> None:
    """torch.export with a dynamic batch, as the frozen checkpoint helper does; the graph matches eager."""
    model.eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    with torch.no_grad():
        program = torch.export.export(model, (ids(),), dynamic_shapes=({0: batch},), strict=False)
        x = ids(batch=3, seed=4)
        torch.testing.assert_close(program.module()(x), model(x))


def units(source: str) -> dict[str, str]:
    """Code of every top-level function and every method ("Class.method"), for locality checks."""
    found: dict[str, str] = {}
    for node in cst.parse_module(source).body:
        if isinstance(node, cst.FunctionDef):
            found[node.name.value] = cst.Module(body=[node]).code
        elif isinstance(node, cst.ClassDef):
            for item in node.body.body:
                key = f"{node.name.value}.{getattr(getattr(item, 'name', None), 'value', '?')}"
                found[key] = found.get(key, "") + cst.Module(body=[item]).code  # type: ignore[list-item]
    return found


def test_there_are_at_least_ten_structural_operators_in_a_stable_order() -> None:
    names = [op.name for op in structural_operators()]
    assert len(names) >= 10 and len(set(names)) == len(names)
    assert names == [op.name for op in structural_operators()]
    for op in structural_operators():
        assert op.kind == "structural" and isinstance(op.args, tuple) and len(op.args) >= 2


def test_every_operator_recognises_the_template_and_masks_its_current_variant() -> None:
    for op in OPERATORS.values():
        current = op.current(MODULE)
        assert current in op.args, op.name
        assert not op.applicable(MODULE, current)
        assert [a for a in op.args if op.applicable(MODULE, a)] == [a for a in op.args if a != current]
        with pytest.raises(EditError):
            apply_edit(TEMPLATE, op, current)


@pytest.mark.parametrize(("name", "arg"), CASES, ids=[f"{n}-{a}" for n, a in CASES])
def test_edited_template_builds_trains_and_stays_causal(name: str, arg: str) -> None:
    edit = apply_edit(TEMPLATE, OPERATORS[name], arg)
    compile(edit.after, "train.py", "exec")
    assert "\n" not in edit.description and "->" in edit.description
    with built(edit.after) as (train, model):
        check_trains(train, model)
        check_causal(model)


@pytest.mark.parametrize(("name", "arg"), CASES, ids=[f"{n}-{a}" for n, a in CASES])
def test_edit_is_local_and_its_inverse_restores_the_template(name: str, arg: str) -> None:
    op = OPERATORS[name]
    edit = apply_edit(TEMPLATE, op, arg)
    before, after = units(TEMPLATE), units(edit.after)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed and changed <= TOUCHES[name], changed - TOUCHES[name]
    assert "# search:" not in "".join(line for line in edit.diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))
    edited_module = cst.parse_module(edit.after)
    assert op.current(edited_module) == arg and not op.applicable(edited_module, arg)
    back = apply_edit(edit.after, op, op.current(MODULE))  # type: ignore[arg-type]
    assert cst.parse_module(back.after).deep_equals(MODULE)


def test_swiglu_keeps_the_parameter_count_zero_init_and_muon_split() -> None:
    with built(TEMPLATE) as (_, model):
        relu2 = sum(p.numel() for p in model.blocks[0].mlp.parameters())
    with built(edited("activation", "swiglu")) as (train, model):
        mlp = model.blocks[0].mlp
        assert abs(sum(p.numel() for p in mlp.parameters()) / relu2 - 1) < 0.05
        assert all(block.mlp.proj.weight.abs().sum() == 0 for block in model.blocks)
        muon = [opt for opt in train.build_optimizers(model) if isinstance(opt, train.Muon)]
        assert {id(p) for g in muon[0].param_groups for p in g["params"]} == {id(p) for p in model.blocks.parameters()}


def test_tied_embeddings_share_one_matrix_in_one_group() -> None:
    with built(edited("tie_embeddings", "on")) as (train, model):
        assert model.head.weight is model.embed.weight
        assert model.embed.weight.std() < 0.01  # the head's small init, so training starts near uniform
        groups = [g for opt in train.build_optimizers(model) for g in opt.param_groups]
        assert sum(any(p is model.embed.weight for p in g["params"]) for g in groups) == 1


def test_sliding_window_masks_far_keys_except_in_the_last_layer() -> None:
    with built(edited("sliding_window", "quarter")) as (_, model):
        masks = [block.attn.mask for block in model.blocks]
        assert all(not m.triu(1).any() for m in masks)  # causal
        assert masks[0][T - 1].sum() == T // 4 and masks[-1][T - 1].sum() == T
        assert "mask" not in " ".join(model.state_dict())  # rebuilt in __init__, never saved


@pytest.mark.parametrize("steps", [("sliding_window", "half"), ("position", "learned"), ("tie_embeddings", "on")],
                         ids=lambda s: "-".join(s))
def test_edited_models_export_with_a_dynamic_batch(steps: tuple[str, str]) -> None:
    with built(edited(*steps)) as (_, model):
        check_exports(model)


def test_learned_position_embeddings_are_initialised_and_optimised_with_adamw() -> None:
    with built(edited("position", "learned")) as (train, model):
        assert not hasattr(train, "apply_rotary") and model.pos_embed.weight.shape == (T, model.config.model_dim)
        adam = train.build_optimizers(model)[0]
        assert isinstance(adam, torch.optim.AdamW)
        assert any(p is model.pos_embed.weight for g in adam.param_groups for p in g["params"])


def test_cosine_warmdown_keeps_the_schedule_endpoints() -> None:
    with imported_source(edited("lr_schedule", "cosine")) as train:
        train.FINAL_LR_FRAC = 0.1
        values = [train.lr_multiplier(i / 100) for i in range(101)]
        assert values[0] == values[50] == 1.0 and values[100] == pytest.approx(0.1)
        assert all(a >= b for a, b in zip(values, values[1:]))
        assert values[75] == pytest.approx(0.55)  # half way down the cosine


# One of every operator, with hyperparameter edits in between: still builds, trains, is causal, exports.
SEQUENCE = [("position", "learned"), ("scale:MATRIX_LR", "x0.5"), ("activation", "swiglu"), ("tie_embeddings", "on"),
            ("norm", "layernorm"), ("sliding_window", "half"), ("qk_norm", "off"), ("shift:WARMDOWN_FRAC", "+0.1R"),
            ("block_layout", "parallel"), ("softcap", "off"), ("zero_init", "off"), ("matrix_optimizer", "adamw"),
            ("lr_schedule", "cosine"), ("sliding_window", "quarter"), ("position", "rope"), ("qk_norm", "on")]


def test_every_operator_composes_in_one_sequence() -> None:
    source = TEMPLATE
    for name, arg in SEQUENCE:
        op = OPERATORS.get(name) or {o.name: o for o in hyperparameter_operators(source)}[name]
        source = apply_edit(source, op, arg).after
        module = cst.parse_module(source)
        assert all(o.current(module) is not None for o in OPERATORS.values()), name
    assert {n for n, _ in SEQUENCE} >= OPERATORS.keys()
    with built(source) as (train, model):
        check_trains(train, model)
        check_exports(model)
        check_causal(model)


def test_random_walks_of_actions_keep_every_operator_working() -> None:
    """Masked random edits (structural and a few safe hyperparameters) never break detection or the file."""
    rng = random.Random(0)
    safe = ("MATRIX_LR", "EMBEDDING_LR", "WARMDOWN_FRAC", "LOGIT_SOFTCAP", "ROPE_BASE", "INIT_SCALE")
    for _ in range(4):
        source = TEMPLATE
        for _ in range(12):
            module = cst.parse_module(source)
            hyper = [o for o in hyperparameter_operators(source) if o.knob in safe]
            actions = [(o, a) for o in [*OPERATORS.values(), *hyper] for a in o.args if o.applicable(module, a)]
            op, arg = rng.choice(actions)
            source = apply_edit(source, op, arg).after
            compile(source, "train.py", "exec")
            module = cst.parse_module(source)
            assert all(o.current(module) is not None for o in OPERATORS.values())
        with built(source) as (_, model):
            assert torch.isfinite(model(ids())).all()


def masked_everywhere(module: cst.Module) -> list[str]:
    """Actions that claim to apply; each must then apply cleanly and compile."""
    claimed = []
    for op in OPERATORS.values():
        for arg in op.args:
            if op.applicable(module, arg):
                claimed.append(f"{op.name}:{arg}")
                compile(op.apply(module, arg)[0].code, "train.py", "exec")
            else:
                with pytest.raises(EditError):
                    op.apply(module, arg)
    return claimed


def test_a_user_script_without_a_gpt_masks_every_structural_action() -> None:
    assert masked_everywhere(cst.parse_module(USER_SCRIPT)) == []
    assert masked_everywhere(cst.parse_module("")) == []


def test_operators_with_a_missing_anchor_report_not_applicable() -> None:
    """The template with one definition (or method) removed at a time: masks adapt, nothing raises."""
    for i, node in enumerate(MODULE.body):
        if not isinstance(node, (cst.ClassDef, cst.FunctionDef)):
            continue
        masked_everywhere(MODULE.with_changes(body=[*MODULE.body[:i], *MODULE.body[i + 1:]]))
        if isinstance(node, cst.ClassDef):
            for item in node.body.body:
                if isinstance(item, cst.FunctionDef):
                    masked_everywhere(MODULE.deep_remove(item))  # type: ignore[arg-type]
    without_mlp = MODULE.with_changes(body=[s for s in MODULE.body if getattr(getattr(s, "name", None), "value", "") != "MLP"])
    assert not any(OPERATORS["activation"].applicable(without_mlp, a) for a in OPERATORS["activation"].args)
