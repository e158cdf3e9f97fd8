"""Harness overhead: where the wall clock of one research iteration goes, and how much of it is training.

Three measurements, all of the real code:

1. A short campaign of the real loop (the core `Loop` as `arl run --agent ppo` runs it: event log, ledger
   projection, git; real runner, smoke checks on) on a CPU
   preset. The controller's methods, the proposer, the executor, the runner's processes and its guard
   are wrapped with timers from outside (nothing in the package is changed); nested timers subtract, so
   every second lands in exactly one column:
     smoke       the smoke check before each candidate (a subprocess running one tiny step)
     start-up    training process launch to its first step: sandbox, interpreter, imports, model build
     training    the budget the runtime counted (what the preset buys)
     save        checkpoint export (torch.export) inside the training process
     exit        training process: after the save until the runner saw it exit (interpreter teardown)
     guard       the runner's frozen-file snapshot and check around the candidate
     eval start  evaluator process: launch, imports and exit (its wall time minus its own clock)
     eval score  evaluator's own clock: integrity hashes, torch.export.load, causality check, scoring
     runner      the rest of `run_experiment`: compile check, workspace, log parsing
     controller  everything else of an iteration: propose, events, ledger, git, render, decide, learn
2. The controller alone on the synthetic landscape (its executor parses each train.py, tens of ms; the
   "runner" column, not counted), for many iterations: the cost of `proposer.propose`, the policy update
   (its own step, every 32 decisions), the event log, ledger and git writes, results.tsv, rendering each
   train.py, `observe`, and whether it grows with the history.
3. The harness's processes one at a time, fresh, repeated: the evaluator's phases (import, manifest,
   torch.export.load, causality check, scoring) and its start-up + exit, the smoke check, and a cpu-smoke
   training run's start-up and exit. Run it with PYTHONPATH pointing at another source tree to compare
   versions of the harness (the script imports whichever `autoresearch_rl` is importable first).

Projection to a 300 s budget: every column but training stays as measured; training becomes 300 s plus
the measured overshoot past the budget (the last step). Goals (issue 6): controller step under 1 s;
everything but training and evaluation under 3% of a 300 s iteration.

    python benchmarks/harness_overhead.py --preset cpu-tiny --iters 4 --synthetic-iters 200
    python benchmarks/harness_overhead.py --iters 1 --synthetic-iters 30 --eval-repeats 1     # quick check (~3 min)

Writes benchmarks/results/harness_overhead_<preset>.json and .png (stacked bars of the time split).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

if importlib.util.find_spec("autoresearch_rl") is None:  # run from a source tree without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import torch  # noqa: E402

import autoresearch_rl.ledger.projection as projection_module  # noqa: E402
import autoresearch_rl.runner.runner as runner_module  # noqa: E402
import autoresearch_rl.target.smoke as smoke_module  # noqa: E402
from autoresearch_rl.backends.local import InlineBackend  # noqa: E402
from autoresearch_rl.campaign import Campaign, RunnerExecutor  # noqa: E402
from autoresearch_rl.core.loop import Loop  # noqa: E402
from autoresearch_rl.env.data import default_cache_dir, prepare_dataset  # noqa: E402
from autoresearch_rl.env.presets import get_preset  # noqa: E402
from autoresearch_rl.experiment import ExperimentRecord  # noqa: E402
from autoresearch_rl.oracle import OracleConfig  # noqa: E402
from autoresearch_rl.real_campaign import real_campaign  # noqa: E402
from autoresearch_rl.runner.guard import FrozenSnapshot  # noqa: E402
from autoresearch_rl.synthetic import SyntheticLandscape  # noqa: E402
from autoresearch_rl.target import template_source  # noqa: E402

COLUMNS = ("smoke", "start-up", "training", "save", "exit", "guard", "eval start", "eval score", "runner", "controller")
EVALUATION = ("eval start", "eval score")
COLORS = {"smoke": "#9467bd", "start-up": "#ff7f0e", "training": "#2ca02c", "save": "#d62728", "exit": "#e377c2",
          "guard": "#7f7f7f", "eval start": "#1f77b4", "eval score": "#17becf", "runner": "#bcbd22",
          "controller": "#8c564b"}
CONTROLLER_GOAL_S = 1.0
OVERHEAD_GOAL_FRACTION = 0.03
PROJECTED_BUDGET_S = 300.0


class Profiler:
    """Exclusive wall time per label: a timer nested in another is subtracted from its parent."""

    def __init__(self) -> None:
        self._stack: list[list] = []  # [label, start, seconds spent in nested timers]
        self.current: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, owner: Any, name: str, label: str, after: Callable[[Any, float], None] | None = None) -> None:
        """Replace owner.name with a timed version; `after(result, inclusive_seconds)` sees each call."""
        fn = getattr(owner, name)

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append([label, time.perf_counter(), 0.0])
            result = None
            try:
                result = fn(*args, **kwargs)
                return result
            finally:
                _, start, nested = self._stack.pop()
                elapsed = time.perf_counter() - start
                self.current[label] += elapsed - nested
                self.calls[label] += 1
                if self._stack:
                    self._stack[-1][2] += elapsed
                if after is not None:
                    after(result, elapsed)

        setattr(owner, name, timed)

    def take(self) -> dict[str, float]:
        """The exclusive times gathered since the last take."""
        out, self.current = dict(self.current), defaultdict(float)
        return out


def instrument(loop: Loop, campaign: Campaign, profiler: Profiler, *, real: bool) -> dict[str, Any]:
    """Wrap the loop's steps, proposer, event log, ledger, git and executor (and, for real runs, the runner).

    Returns the event log the wrappers fill: per-decision exclusive times, and per experiment the walls
    of its processes, its guard time and the smoke check that preceded it.
    """
    p = profiler
    ev: dict[str, Any] = {"iterations": [], "experiments": [], "smoke": [], "processes": [], "guard": [],
                          "pending_smoke": None, "calibration": {}}
    # the loop's own steps: what no narrower timer claims lands in "loop other" (state folds, bookkeeping)
    for name in ("_run", "_collect"):
        p.wrap(loop, name, "loop other")
    calibrated = {"done": False}

    def calibration_step(_result: Any, _seconds: float) -> None:
        if loop.state.calibrated and not calibrated["done"]:  # calibration's bookkeeping is not an iteration's
            calibrated["done"] = True
            ev["calibration"] = p.take()

    def decided(_result: Any, _seconds: float) -> None:
        ev["iterations"].append(p.take())

    p.wrap(loop, "_calibrate_step", "loop other", after=calibration_step)
    p.wrap(loop, "_decide", "loop other", after=decided)
    p.wrap(loop, "_update", "policy update")
    p.wrap(loop.c.proposer, "propose", "propose")
    p.wrap(loop.c.proposer, "observe", "observe (learn)")
    p.wrap(loop.c.store, "append", "event log")
    p.wrap(loop.workers, "render", "render train.py")
    for name in ("start_experiment", "set_commit", "finish_experiment", "decide", "set_meta", "meta", "experiments",
                 "get", "mark_interrupted"):
        p.wrap(campaign.ledger, name, "ledger")
    for name in ("record", "keep", "incumbent", "experiment_commit", "source_at"):
        p.wrap(campaign.history, name, "git")
    p.wrap(projection_module, "write_results_tsv", "results.tsv")

    def validated(_result: Any, seconds: float) -> None:
        ev["smoke"].append(seconds)
        ev["pending_smoke"] = seconds

    def executed(record: ExperimentRecord, seconds: float) -> None:
        start = ev.pop("_marks")
        ev["experiments"].append(dict(record=record, seconds=seconds, smoke=ev["pending_smoke"] or 0.0,
                                      walls=ev["processes"][start[0]:], guard=sum(ev["guard"][start[1]:])))
        ev["pending_smoke"] = None

    executor = campaign.get_executor()
    p.wrap(executor, "validate", "smoke", after=validated)
    p.wrap(executor, "execute", "runner", after=executed)
    execute = executor.execute

    def marked(*args: Any, **kwargs: Any) -> ExperimentRecord:
        ev["_marks"] = (len(ev["processes"]), len(ev["guard"]))
        return execute(*args, **kwargs)

    executor.execute = marked
    if real:
        p.wrap(runner_module, "run_candidate", "process", after=lambda _o, s: ev["processes"].append(s))
        p.wrap(smoke_module, "run_candidate", "smoke")  # the smoke check's own process, not a training run
        p.wrap(FrozenSnapshot, "take", "guard", after=lambda _r, s: ev["guard"].append(s))
        p.wrap(FrozenSnapshot, "changes", "guard", after=lambda _r, s: ev["guard"].append(s))
    return ev


def _campaign_loop(campaign: Campaign, base: str, iters: int, seed: int, validate: bool, calibration_runs: int) -> Loop:
    """The loop `arl run --agent ppo` runs, on this campaign's executor and ledger."""
    return real_campaign(base, "ppo", seed, iters, InlineBackend(campaign.get_executor()), ledger=campaign,
                         validate=validate, calibration_runs=calibration_runs,
                         oracle=OracleConfig(max_iters=iters, improvement_probability=0.0))


def experiment_split(e: dict) -> dict[str, float]:
    """One experiment's columns from its record, its process walls (training, evaluation) and guard time."""
    record: ExperimentRecord = e["record"]
    t = record.timings
    train_wall = e["walls"][0] if e["walls"] else 0.0
    eval_wall = e["walls"][1] if len(e["walls"]) > 1 else 0.0
    eval_own = float(record.eval_details.get("seconds", 0.0) or 0.0)
    return {"smoke": e["smoke"], "start-up": t.startup, "training": t.training, "save": t.save,
            "exit": max(0.0, train_wall - t.startup - t.training - t.save), "guard": e["guard"],
            "eval start": max(0.0, eval_wall - eval_own), "eval score": eval_own,
            "runner": max(0.0, e["seconds"] - train_wall - eval_wall - e["guard"])}


def run_real(preset_name: str, iters: int, cache: Path, seed: int) -> dict:
    """A short PPO campaign on the real runner; per-experiment time split and per-iteration controller time."""
    preset = get_preset(preset_name)
    prepare_dataset(preset, cache)
    base = template_source()
    with tempfile.TemporaryDirectory(prefix="arl-overhead-") as tmp, \
            Campaign.open(Path(tmp) / "run", preset_name, cache) as campaign:
        campaign.executor = RunnerExecutor(campaign.preset, campaign.cache_dir, campaign.manifest_path, smoke=True)
        loop = _campaign_loop(campaign, base, iters, seed, validate=True, calibration_runs=2)
        profiler = Profiler()
        ev = instrument(loop, campaign, profiler, real=True)
        started = time.perf_counter()
        loop.run()
        wall = time.perf_counter() - started
        rows = {int(r.proposal["core_exp"]): r for r in campaign.ledger.experiments() if "core_exp" in r.proposal}
        loop.c.store.close()  # type: ignore[attr-defined]
    experiments = []
    for e in ev["experiments"]:
        exp_id = int(Path(e["record"].workspace).name)  # the workspace is named by the experiment of the log
        row = rows[exp_id]
        experiments.append(dict(exp_id=exp_id, role=row.role, status=row.status.value, val_bpb=e["record"].val_bpb,
                                description=row.description, record_total=e["record"].timings.total, **experiment_split(e)))
    return dict(preset=preset_name, budget_s=preset.time_budget_s, iterations=len(ev["iterations"]), wall_s=wall,
                experiments=experiments, smoke_checks=ev["smoke"], controller_iterations=ev["iterations"],
                calibration_bookkeeping=ev["calibration"], calls=dict(profiler.calls),
                invalid_edits=sum(r.status.value == "INVALID_EDIT" for r in rows.values()))


def run_synthetic(iters: int, cache: Path, seed: int) -> dict:
    """The loop on the synthetic landscape: the controller's own cost per iteration."""
    base = template_source()
    with tempfile.TemporaryDirectory(prefix="arl-overhead-syn-") as tmp, \
            Campaign.open(Path(tmp) / "run", "cpu-smoke", cache) as campaign:
        campaign.executor = SyntheticLandscape(base)
        loop = _campaign_loop(campaign, base, iters, seed, validate=False, calibration_runs=3)
        profiler = Profiler()
        events = instrument(loop, campaign, profiler, real=False)
        started = time.perf_counter()
        loop.run()
        wall = time.perf_counter() - started
        loop.c.store.close()  # type: ignore[attr-defined]
    return dict(iterations=len(events["iterations"]), wall_s=wall, controller_iterations=events["iterations"],
                calls=dict(profiler.calls))


_EVAL_PHASES = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy, torch
t1 = time.perf_counter()
from pathlib import Path
from autoresearch_rl.env import checkpoint, evaluator, integrity
from autoresearch_rl.env.data import Dataset
from autoresearch_rl.env.presets import get_preset
t2 = time.perf_counter()
ckpt, preset_name, cache, manifest_path = sys.argv[1:5]
preset = get_preset(preset_name)
dataset = Dataset.open(preset, Path(cache))
manifest = integrity.read_manifest(Path(manifest_path))
changed = integrity.differences(manifest, integrity.build_manifest(dataset.root, include_train=False))
assert not changed, changed
t3 = time.perf_counter()
model = checkpoint.load(Path(ckpt), torch.device("cpu"))
t4 = time.perf_counter()
tokens, token_bytes = dataset.tokens("val"), dataset.token_bytes()
with torch.no_grad():
    evaluator.check_causality(model, tokens, preset, dataset.vocab_size, torch.device("cpu"))
    t5 = time.perf_counter()
    evaluator.score(model, tokens, token_bytes, preset, torch.device("cpu"))
t6 = time.perf_counter()
print(json.dumps({"import torch": t1 - t0, "import evaluator": t2 - t1, "integrity": t3 - t2,
                  "load (torch.export)": t4 - t3, "causality": t5 - t4, "score": t6 - t5}))
"""


def _median_dict(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}


def fresh_processes(preset_name: str, cache: Path, repeats: int) -> dict:
    """The harness's processes one by one, each fresh, `repeats` times (medians):

    - evaluator phases (import, integrity, torch.export.load, causality, score) on a template checkpoint;
    - the real evaluator command: its wall time against its own clock (the difference is start-up and exit);
    - the smoke check of the template (a subprocess running one tiny step);
    - a cpu-smoke training run of the template: launch to first step, and last output line to exit.
    """
    import dataclasses

    import autoresearch_rl
    from autoresearch_rl.env import checkpoint, integrity
    from autoresearch_rl.env.data import Dataset
    from autoresearch_rl.target.loader import imported_source
    from autoresearch_rl.target.smoke import smoke_check

    preset = get_preset(preset_name)
    dataset = Dataset.open(preset, cache)
    package_root = str(Path(autoresearch_rl.__file__).resolve().parent.parent)
    with imported_source(template_source()) as module:
        config = dataclasses.asdict(module.make_config(dataset.vocab_size, preset.seq_len))
        model = module.build_model(config)
    phases, evaluator_runs, smoke_runs, train_runs = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="arl-overhead-proc-") as tmp:
        ckpt = Path(tmp) / "checkpoint"
        checkpoint.save(model, ckpt, model_config=config, seq_len=preset.seq_len, vocab_size=dataset.vocab_size,
                        device=torch.device("cpu"))
        manifest = Path(tmp) / "manifest.json"
        integrity.write_manifest(manifest, integrity.build_manifest(dataset.root))
        (Path(tmp) / "train.py").write_text(template_source())
        env = {**os.environ, "PYTHONPATH": package_root, "PYTHONUNBUFFERED": "1"}
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _EVAL_PHASES, str(ckpt), preset_name, str(cache), str(manifest)],
                                 capture_output=True, text=True, env=env, check=True)
            phases.append(json.loads(out.stdout.strip().splitlines()[-1]) | {"process total": time.perf_counter() - t0})

            result = Path(tmp) / "eval.json"
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "autoresearch_rl.env.evaluator", "--checkpoint", str(ckpt), "--preset",
                            preset_name, "--cache-dir", str(cache), "--manifest", str(manifest), "--out", str(result)],
                           capture_output=True, text=True, env=env, check=True)
            wall = time.perf_counter() - t0
            own = float(json.loads(result.read_text())["seconds"])
            evaluator_runs.append({"wall": wall, "own clock": own, "start-up + exit": wall - own})

            smoke_runs.append({"wall": smoke_check(template_source(), preset_name).seconds})

            train_env = {**env, "ARL_PRESET": "cpu-smoke", "ARL_CACHE_DIR": str(cache), "ARL_SEED": "0",
                         "ARL_CHECKPOINT_DIR": str(Path(tmp) / "train-checkpoint"), "ARL_LAUNCHED_AT": repr(time.time())}
            proc = subprocess.Popen([sys.executable, "train.py"], cwd=tmp, env=train_env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            last, summary = time.time(), {}
            for line in proc.stdout:
                last = time.time()
                key, sep, value = line.strip().partition(": ")
                if sep and key in ("startup_seconds", "training_seconds", "save_seconds", "total_seconds"):
                    summary[key] = float(value)
            proc.wait()
            gone = time.time()
            if proc.returncode != 0 or "total_seconds" not in summary:  # reported, not fatal: the other timings stand
                print(f"cpu-smoke training run failed (exit {proc.returncode}); not timed", file=sys.stderr)
                continue
            train_runs.append({"start-up": summary["startup_seconds"], "save": summary["save_seconds"],
                               "exit": gone - last, "wall": gone - float(train_env["ARL_LAUNCHED_AT"])})
    return {"repeats": repeats, "evaluator phases": _median_dict(phases), "evaluator": _median_dict(evaluator_runs),
            "smoke check": _median_dict(smoke_runs),
            "training (cpu-smoke)": _median_dict(train_runs) if train_runs else {},
            "runs": {"evaluator": evaluator_runs, "smoke check": smoke_runs, "training (cpu-smoke)": train_runs}}


# ---- summaries -----------------------------------------------------------------------------------


def controller_seconds(iteration: dict[str, float]) -> float:
    """An iteration's controller time: everything but the executor's work."""
    return sum(v for k, v in iteration.items() if k not in ("runner", "process", "smoke", "guard", "calibration"))


def summarise_real(real: dict) -> dict[str, float]:
    """A scored candidate iteration: process columns averaged over scored experiments (calibration, candidates,
    confirmations run the same way), the smoke check over all smoke checks, the controller over all iterations."""
    scored = [e for e in real["experiments"] if e["val_bpb"] is not None] or real["experiments"]
    mean = {c: statistics.fmean(e[c] for e in scored) for c in COLUMNS if c not in ("smoke", "controller")}
    mean["smoke"] = statistics.fmean(real["smoke_checks"]) if real["smoke_checks"] else 0.0
    controller = [controller_seconds(i) for i in real["controller_iterations"]]
    mean["controller"] = statistics.fmean(controller) if controller else 0.0
    return {c: mean[c] for c in COLUMNS}


def project(mean: dict[str, float], budget_s: float, target_s: float) -> dict[str, float]:
    """The same iteration under a `target_s` budget: everything else fixed, training = the new budget plus the
    measured overshoot (the runtime stops at the first step past the budget: at most one step, not a fraction)."""
    return {**mean, "training": target_s + max(0.0, mean["training"] - budget_s)}


def fractions(split: dict[str, float]) -> dict[str, float]:
    total = sum(split.values())
    overhead = sum(v for k, v in split.items() if k not in ("training", *EVALUATION))
    return dict(total_s=total, training=split["training"] / total, evaluation=sum(split[k] for k in EVALUATION) / total,
                overhead=overhead / total, overhead_s=overhead)


def summarise_controller(iterations: list[dict[str, float]]) -> dict:
    totals = [controller_seconds(i) for i in iterations]
    labels = sorted({k for i in iterations for k in i if k not in ("runner", "process", "smoke", "guard", "calibration")})
    n = len(totals)
    q = max(1, n // 4)
    ordered = sorted(totals)
    return dict(mean_s=statistics.fmean(totals), median_s=statistics.median(totals),
                p95_s=ordered[min(n - 1, int(0.95 * n))], max_s=ordered[-1],
                first_quarter_mean_s=statistics.fmean(totals[:q]), last_quarter_mean_s=statistics.fmean(totals[-q:]),
                by_label_mean_s={k: statistics.fmean(i.get(k, 0.0) for i in iterations) for k in labels},
                by_label_max_s={k: max(i.get(k, 0.0) for i in iterations) for k in labels},
                per_iteration_s=[round(t, 4) for t in totals])


def print_report(result: dict) -> None:
    real = result.get("real")
    if real:
        print(f"\n== per experiment ({real['preset']}, budget {real['budget_s']:.0f} s), seconds ==")
        print(f"{'exp':>4} {'role':<12} {'status':<16} " + " ".join(f"{c:>10}" for c in COLUMNS if c != "controller")
              + f" {'total':>7}")
        for e in real["experiments"]:
            print(f"{e['exp_id']:>4} {e['role']:<12} {e['status']:<16} "
                  + " ".join(f"{e[c]:>10.2f}" for c in COLUMNS if c != "controller")
                  + f" {e['record_total'] + e['smoke']:>7.2f}")
        print("\n== one candidate iteration: mean time split ==")
        print(f"{'':<26} " + " ".join(f"{c:>10}" for c in COLUMNS) + f" {'total':>7} {'train %':>8} {'overhead %':>10}")
        for name, split in result["splits"].items():
            f = fractions(split)
            print(f"{name:<26} " + " ".join(f"{split[c]:>10.2f}" for c in COLUMNS)
                  + f" {f['total_s']:>7.1f} {100 * f['training']:>8.1f} {100 * f['overhead']:>10.2f}")
        print("overhead % = everything but training and evaluation (goal < 3% at 300 s)")
    fresh = result.get("fresh_processes")
    if fresh:
        print(f"\n== fresh processes (median of {fresh['repeats']}), seconds ==")
        for name in ("evaluator phases", "evaluator", "smoke check", "training (cpu-smoke)"):
            print(f"{name + ':':<22} " + "  ".join(f"{k} {v:.2f}" for k, v in fresh[name].items()))
    syn = result.get("synthetic")
    if syn:
        c = syn["controller"]
        print(f"\n== controller step on the synthetic landscape ({syn['iterations']} iterations, PPO) ==")
        print(f"mean {c['mean_s']:.3f} s  median {c['median_s']:.3f}  p95 {c['p95_s']:.3f}  max {c['max_s']:.3f}  "
              f"first quarter {c['first_quarter_mean_s']:.3f}  last quarter {c['last_quarter_mean_s']:.3f}  "
              f"(goal < {CONTROLLER_GOAL_S:.0f} s)")
        print("mean: " + "  ".join(f"{k} {1e3 * v:.1f} ms" for k, v in sorted(c["by_label_mean_s"].items(), key=lambda kv: -kv[1])))
        print("max:  " + "  ".join(f"{k} {1e3 * v:.0f} ms" for k, v in sorted(c["by_label_max_s"].items(), key=lambda kv: -kv[1])))
    for line in result.get("verdicts", []):
        print(line)


def plot(result: dict, path: Path) -> None:
    """Left: the measured iteration in seconds. Right: the share of each column, measured and projected."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = result["splits"]
    names = list(splits)
    fig, axes = plt.subplots(1, 2, figsize=(13, 2.6 + 0.5 * len(names)))
    for ax, relative, shown in ((axes[0], False, names[:1]), (axes[1], True, names)):
        for y, name in enumerate(shown):
            split = splits[name]
            total = sum(split.values())
            left = 0.0
            for c in COLUMNS:
                width = split[c] / total * 100 if relative else split[c]
                ax.barh(y, width, left=left, color=COLORS[c], label=c if (y == 0 and relative) else None,
                        edgecolor="white", linewidth=0.3)
                if not relative and split[c] >= 1.0:
                    ax.text(left + width / 2, y, f"{split[c]:.1f}", ha="center", va="center", fontsize=7)
                left += width
        ax.set_yticks(range(len(shown)), shown)
        ax.invert_yaxis()
        ax.set_xlabel("% of the iteration" if relative else "seconds")
    axes[0].set_title("one scored candidate iteration, measured")
    axes[1].set_title("share; overhead = all but training and evaluation")
    fig.legend(*axes[1].get_legend_handles_labels(), loc="lower center", ncol=len(COLUMNS), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-tiny", choices=("cpu-tiny", "cpu-smoke"))
    parser.add_argument("--iters", type=int, default=4, help="candidate iterations of the real campaign (0 skips it)")
    parser.add_argument("--synthetic-iters", type=int, default=200, help="iterations on the synthetic landscape (0 skips)")
    parser.add_argument("--eval-repeats", type=int, default=3,
                        help="repeats of the fresh-process timings: evaluator, smoke check, training exit (0 skips)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON (default benchmarks/results/harness_overhead_<preset>.json)")
    args = parser.parse_args()
    cache = (args.cache_dir or default_cache_dir()).resolve()
    started = time.perf_counter()
    import autoresearch_rl

    result: dict[str, Any] = dict(benchmark="harness_overhead", preset=args.preset, torch=torch.__version__,
                                  package=str(Path(autoresearch_rl.__file__).resolve().parent),  # the source measured
                                  python=platform.python_version(), host=platform.node(), cpus=os.cpu_count(),
                                  torch_threads=torch.get_num_threads(),
                                  load_before=[round(x, 2) for x in os.getloadavg()],
                                  when=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
                                  command=" ".join(sys.argv))
    verdicts = []
    if args.iters > 0:
        real = run_real(args.preset, args.iters, cache, args.seed)
        budget = real["budget_s"]
        mean = summarise_real(real)
        splits = {f"{args.preset} ({budget:.0f} s, measured)": mean}
        if budget != PROJECTED_BUDGET_S:
            splits[f"projected ({PROJECTED_BUDGET_S:.0f} s budget)"] = project(mean, budget, PROJECTED_BUDGET_S)
        result["real"] = real
        result["splits"] = splits
        for name, split in splits.items():
            f = fractions(split)
            result.setdefault("fractions", {})[name] = f
        f300 = fractions(list(splits.values())[-1])
        verdicts.append(f"overhead at {PROJECTED_BUDGET_S:.0f} s: {100 * f300['overhead']:.2f}% "
                        f"({f300['overhead_s']:.1f} s) -> goal < {100 * OVERHEAD_GOAL_FRACTION:.0f}%: "
                        f"{'met' if f300['overhead'] < OVERHEAD_GOAL_FRACTION else 'NOT met'}")
        verdicts.append(f"training share: {100 * fractions(mean)['training']:.1f}% at {budget:.0f} s, "
                        f"{100 * f300['training']:.1f}% projected at {PROJECTED_BUDGET_S:.0f} s")
    if args.eval_repeats > 0:
        result["fresh_processes"] = fresh_processes(args.preset, cache, args.eval_repeats)
    if args.synthetic_iters > 0:
        syn = run_synthetic(args.synthetic_iters, cache, args.seed)
        syn["controller"] = summarise_controller(syn.pop("controller_iterations"))
        result["synthetic"] = syn
        c = syn["controller"]
        verdicts.append(f"controller step (synthetic, {syn['iterations']} iterations): mean {c['mean_s']:.3f} s, "
                        f"max {c['max_s']:.3f} s -> goal < {CONTROLLER_GOAL_S:.0f} s: "
                        f"{'met' if c['max_s'] < CONTROLLER_GOAL_S else 'NOT met'}")
    result["verdicts"] = verdicts
    result["load_after"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.perf_counter() - started, 1)
    if "real" in result:
        result["real"]["controller"] = summarise_controller(result["real"].pop("controller_iterations"))
        for e in result["real"]["experiments"]:
            e.pop("record", None)
    print_report(result)
    out = args.out or Path(__file__).resolve().parent / "results" / f"harness_overhead_{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(out)
    if "splits" in result:
        plot(result, out.with_suffix(".png"))
    print(f"wrote {out}" + (f" and {out.with_suffix('.png')}" if "splits" in result else ""))


if __name__ == "__main__":
    main()
