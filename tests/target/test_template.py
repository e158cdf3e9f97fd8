"""The train.py template: it compiles, declares a search range for every knob, and its GPT and optimisers work."""

from __future__ import annotations

import ast
import importlib.util
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

from autoresearch_rl.target import TEMPLATE_PATH, template_source

SEARCH_KINDS = {"int", "log-int", "linear", "log", "choice"}
_RANGE = re.compile(r"^(-?[\d.eE+-]+)\.\.(-?[\d.eE+-]+)$")


@pytest.fixture(scope="module")
def train() -> Iterator[ModuleType]:
    """The template imported as a module (its training is guarded behind __main__).

    Registered in sys.modules while in use: its dataclass needs its module there to resolve annotations.
    """
    name = "arl_template_train"
    spec = importlib.util.spec_from_file_location(name, TEMPLATE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(name, None)


def small_config(train: ModuleType, **overrides: object) -> dict:
    config = train.GPTConfig(vocab_size=128, seq_len=32, depth=2, model_dim=64, head_dim=16, mlp_ratio=2,
                             rope_base=10_000.0, logit_softcap=15.0, init_scale=1.0)
    return {**asdict(config), **overrides}


def constants() -> list[tuple[str, object, str]]:
    """(name, value, line) of every module-level UPPER_CASE assignment, found with ast."""
    source = template_source()
    lines = source.splitlines()
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id.isupper():
                text = " ".join(lines[node.lineno - 1 : node.end_lineno])
                found.append((target.id, ast.literal_eval(node.value), text))
    return found


def search_spec(line: str) -> tuple[str, str]:
    """('log', '0.001..0.2') from '... # search: log 0.001..0.2'."""
    comment = line.split("#", 1)[1].strip()
    assert comment.startswith("search:"), line
    kind, _, rest = comment.removeprefix("search:").strip().partition(" ")
    return kind, rest.split(";")[0].strip()  # '; divides X' / '; device cuda' clauses are checked below


def test_template_compiles() -> None:
    compile(template_source(), str(TEMPLATE_PATH), "exec")


def test_template_has_a_docstring_and_guards_main() -> None:
    tree = ast.parse(template_source())
    assert ast.get_docstring(tree)
    guards = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    assert len(guards) == 1


def test_every_upper_case_constant_carries_a_search_annotation() -> None:
    found = constants()
    assert len(found) >= 10
    missing = [name for name, _, line in found if "# search:" not in line]
    assert missing == []


def test_every_constant_default_lies_inside_its_search_range() -> None:
    for name, value, line in constants():
        kind, spec = search_spec(line)
        assert kind in SEARCH_KINDS, f"{name}: unknown search kind {kind!r}"
        if kind == "choice":
            choices = [ast.literal_eval(c.strip()) for c in spec.split(",")]
            assert value in choices, f"{name} = {value!r} is not one of {choices}"
            continue
        match = _RANGE.match(spec)
        assert match, f"{name}: bad range {spec!r}"
        lo, hi = float(match[1]), float(match[2])
        assert lo < hi, name
        assert lo <= value <= hi, f"{name} = {value!r} outside {spec}"
        if kind in ("int", "log-int"):
            assert isinstance(value, int), name
        if kind == "log":
            assert lo > 0, f"{name}: a log range must start above 0"


def test_micro_batch_divides_the_batch_and_compile_is_declared_for_cuda_only() -> None:
    from autoresearch_rl.target.knobs import discover_knobs
    import libcst

    knobs = discover_knobs(libcst.parse_module(template_source()))
    assert knobs["MICRO_BATCH_SIZE"].spec.divides == "BATCH_SIZE"
    assert knobs["COMPILE"].spec.devices == ("cuda",)


def test_build_model_returns_logits_of_shape_batch_time_vocab(train: ModuleType) -> None:
    model = train.build_model(small_config(train))
    idx = torch.randint(0, 128, (3, 32))
    assert model(idx).shape == (3, 32, 128)
    assert model(idx[:, :7]).shape == (3, 7, 128)  # shorter sequences work too


def randomized(train: ModuleType, **overrides: object) -> torch.nn.Module:
    """A template GPT with every weight random (the zero-initialised projections would hide attention)."""
    torch.manual_seed(0)
    model = train.build_model(small_config(train, **overrides))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(std=0.3)
    return model.eval()


def test_logits_are_causal(train: ModuleType) -> None:
    model = randomized(train)
    idx = torch.randint(0, 128, (2, 32), generator=torch.Generator().manual_seed(1))
    t = 12
    changed = idx.clone()
    changed[:, t] = (idx[:, t] + 1) % 128
    with torch.no_grad():
        before, after = model(idx), model(changed)
    torch.testing.assert_close(after[:, :t], before[:, :t], rtol=0, atol=1e-5)
    assert (after[:, t:] - before[:, t:]).abs().amax(dim=-1).min() > 1e-4  # later positions do see it


def test_logits_are_bounded_by_the_softcap(train: ModuleType) -> None:
    cap = 5.0
    model = randomized(train, logit_softcap=cap)
    with torch.no_grad():
        model.head.weight.normal_(std=50.0)  # raw logits far beyond the cap
        logits = model(torch.randint(0, 128, (2, 32)))
    assert logits.abs().max() <= cap
    assert logits.abs().max() > 0.9 * cap


def test_optimizers_cover_every_parameter_exactly_once(train: ModuleType) -> None:
    model = train.build_model(small_config(train))
    seen = [id(p) for opt in train.build_optimizers(model) for g in opt.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())


def test_optimizer_steps_lower_the_loss_on_a_fixed_batch(train: ModuleType) -> None:
    torch.manual_seed(0)
    model = train.build_model(small_config(train))
    optimizers = train.build_optimizers(model)
    x, y = torch.randint(0, 128, (2, 4, 32), generator=torch.Generator().manual_seed(2))

    def loss() -> torch.Tensor:
        logits = model(x)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))

    with torch.no_grad():
        initial = loss().item()
    assert initial == pytest.approx(math.log(128), abs=0.1)  # starts near uniform
    for _ in range(20):
        loss().backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
    with torch.no_grad():
        final = loss().item()
    assert final < initial - 1.0
    for block in model.blocks:  # Muon moved the zero-initialised projections too
        assert block.attn.proj.weight.abs().sum() > 0


def test_lr_multiplier_starts_at_one_and_decays_to_the_final_fraction(train: ModuleType,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert train.WARMUP_FRAC == 0.0
    monkeypatch.setattr(train, "FINAL_LR_FRAC", 0.1)
    assert train.lr_multiplier(0.0) == 1.0
    assert train.lr_multiplier(1.0) == pytest.approx(0.1)
    values = [train.lr_multiplier(i / 100) for i in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert values[100] < values[75] < values[50] == 1.0  # WARMDOWN_FRAC 0.5: flat, then down


def test_lr_multiplier_warms_up_when_warmup_is_set(train: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(train, "WARMUP_FRAC", 0.2)
    assert train.lr_multiplier(0.0) < 0.05
    assert train.lr_multiplier(0.1) < train.lr_multiplier(0.19) <= 1.0
    assert train.lr_multiplier(0.3) == 1.0
