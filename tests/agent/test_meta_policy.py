"""The candidate-scoring policy: knob-name-free and scale-free features, shipped weights, and meta-training that learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autoresearch_rl.agent.search import make_search_agent
from autoresearch_rl.agent.search.candidate_features import featurise
from autoresearch_rl.agent.search.candidate_ppo import CandidateScorer
from autoresearch_rl.agent.search.pretrain import PretrainConfig, pretrain, run_episode
from autoresearch_rl.agent.search.registry import META_WEIGHTS
from autoresearch_rl.core.events import Proposed, to_json
from autoresearch_rl.core.loop import Loop
from autoresearch_rl.core.store import MemoryStore
from autoresearch_rl.landscapes.tabular import TabularLandscape
from autoresearch_rl.simulate import build_campaign


class Table:
    """A small table whose knob names and choice labels are given: the same numbers under other names."""

    directions = {"err": "minimize"}
    _main_metric_name = "err"

    def __init__(self, names: tuple[str, str, str], labels: tuple[str, ...]) -> None:
        self.search_space = {n: list(labels) for n in names}
        rng = np.random.default_rng(0)
        self._dataset = {f"{i}{j}{k}": {"err": rng.normal(i * 0.3 + (j - 2) ** 2 * 0.2 + k * 0.1, 0.2, 4)}
                         for i in range(4) for j in range(4) for k in range(4)}


def _proposals(land, agent: str, seed: int = 1, iters: int = 40) -> list[str]:
    store = MemoryStore()
    Loop(build_campaign(land, agent, seed, iters, store)).run()
    return [to_json(e) for e in store.events() if isinstance(e, Proposed)]


def test_features_and_decisions_never_depend_on_knob_names() -> None:
    a = TabularLandscape(Table(("lr", "depth", "width"), ("a", "b", "c", "d")), name="a")
    b = TabularLandscape(Table(("x", "y", "z"), ("small", "medium", "large", "huge")), name="a")
    assert _proposals(a, "ppo_prior") == _proposals(b, "ppo_prior")
    store = MemoryStore()
    state = Loop(build_campaign(a, "greedy", 2, 20, store)).run()
    cands, rows, campaign = featurise(a.space, state, 20)
    assert rows.dtype == np.float32 and np.isfinite(rows).all() and np.isfinite(campaign).all()
    assert all(isinstance(c, tuple) and all(isinstance(i, int) for i in c) for c, _ in cands)


@pytest.mark.skipif(not META_WEIGHTS.is_file(), reason="the meta-trained weights are not built (arl pretrain)")
def test_shipped_weights_load_are_small_and_give_deterministic_decisions() -> None:
    assert META_WEIGHTS.stat().st_size <= 1_000_000
    assert META_WEIGHTS.with_suffix(".json").is_file()
    land = TabularLandscape(Table(("p", "q", "r"), ("0", "1", "2", "3")), name="t")
    first = _proposals(land, "ppo_meta_frozen", seed=3)
    assert first == _proposals(land, "ppo_meta_frozen", seed=3)
    # the default agent starts from exactly these weights (and fine-tunes them online)
    default = make_search_agent("ppo", land.space, seed=3)
    shipped = torch.load(META_WEIGHTS, weights_only=True)
    assert all(torch.equal(v, shipped[k]) for k, v in default.net.state_dict().items())
    assert default.learn and not make_search_agent("ppo_meta_frozen", land.space, seed=3).learn


def test_missing_weights_are_a_one_line_error(tmp_path: Path) -> None:
    from autoresearch_rl.errors import UserError

    land = TabularLandscape(Table(("p", "q", "r"), ("0", "1", "2", "3")), name="t")
    with pytest.raises(UserError, match="arl pretrain"):
        make_search_agent("ppo_meta", land.space, weights=tmp_path / "none.pt")


def _mean_return(net: CandidateScorer, seeds: range) -> float:
    import io

    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    returns = [1.0 - run_episode({"task": "synthetic", "seed": s, "horizon": 15, "weights": buf.getvalue()})["final_regret"]
               for s in seeds]
    return float(np.mean(returns))


def test_a_few_updates_of_meta_training_improve_the_return_on_a_toy_family(tmp_path: Path) -> None:
    """Start from a bad policy (it almost always re-measures the incumbent): PPO must learn to edit instead."""
    torch.manual_seed(0)
    net = CandidateScorer()
    with torch.no_grad():
        net.prior.zero_()
        net.prior[10] = 6.0  # the re-measure feature: nearly every step buys evidence and never moves
    before = _mean_return(net, range(500, 516))
    config = PretrainConfig(updates=12, episodes_per_update=8, horizon=15, learning_rate=3e-2, eval_every=100,
                            eval_seeds=1, workers=1, entropy_coef=0.0)
    pretrain(config, tmp_path / "toy.pt", progress=False, tasks=("synthetic",), held_out=("synthetic",), net=net)
    after = _mean_return(net, range(500, 516))
    assert after > before + 0.1, (before, after)
    assert (tmp_path / "toy.json").is_file() and (tmp_path / "toy.png").is_file()


@pytest.mark.parametrize("sigma", [0.0, 1e-12, 1.0, 1e6])
def test_the_surrogate_fits_any_noise_scale_without_failing(sigma: float) -> None:
    from autoresearch_rl.agent.search.surrogate import AdditiveSurrogate
    from autoresearch_rl.core.space import DiscreteSpace

    space = DiscreteSpace(("a", "b"), ((0, 1, 2), (0, 1)))
    configs = [(0, 0), (1, 0), (2, 1), (0, 0)]
    mean, sd = AdditiveSurrogate(space).fit(configs, [1.0, 2.0, 3.0, 1.0], sigma).predict([(2, 0), (1, 1)])
    assert np.isfinite(mean).all() and np.isfinite(sd).all() and (sd > 0).all()


def test_paired_advantages_subtract_the_groups_mean_return_to_go_at_each_step() -> None:
    from autoresearch_rl.agent.search.pretrain import paired_advantages

    returns = [torch.tensor([1.0, 1.0]), torch.tensor([3.0]), torch.tensor([5.0, 2.0])]
    adv = paired_advantages(returns, [0, 0, 1])
    assert torch.allclose(adv[0], torch.tensor([-1.0, 0.0]))  # step 1: only it reached that step in its group
    assert torch.allclose(adv[1], torch.tensor([1.0]))
    assert torch.allclose(adv[2], torch.zeros(2))  # alone in its group: nothing to be better than
