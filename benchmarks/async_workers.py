"""What N asynchronous workers cost per experiment and buy per hour, on simulated landscapes.

    python benchmarks/async_workers.py --landscape synthetic,nb201:cifar100,hpobench:kc1 \\
        --agents ppo,evolution,tpe,random --workers-list 1,2,4,8 --seeds 50 --iters 100 --out F.json

Every (task, seed, agent) campaign runs the core loop with 1, 2, 4 and 8 simulated workers
(`core/workers.py`: a run takes the table's training time, or one unit; a proposal sees only the
results that finished before it). Same start, noise stream and budget of `--iters` experiments.
Two paired questions against one worker, scored on the **true** regret of the incumbent:

- **per experiment**: the final regret after the same number of runs. Asynchrony can only cost here
  (proposals are made without the results still running);
- **per hour**: N workers' final regret against one worker's regret at the virtual time the N workers
  finished (what N machines buy in the same wall-clock time).

Prints the tables, writes the JSON and a PNG (median regret against workers, both questions).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from search_efficiency import git_sha


def regret_at(curve: list[float], exps: list[int], finished_at: dict[int, float], t: float, start: float) -> float:
    """The incumbent's regret at virtual time t: after the last iteration finished by then (the start's before)."""
    value = start
    for regret, exp in zip(curve, exps):
        if finished_at[exp] <= t:
            value = regret
        else:
            break
    return value


def run_seed(job: dict) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    from autoresearch_rl.landscapes.base import normalized_regret, start_config
    from autoresearch_rl.landscapes.registry import load_landscape
    from autoresearch_rl.simulate import simulate

    landscape = load_landscape(job["task"], job["seed"])
    start = landscape.true_value(start_config(landscape, job["seed"]))
    start_regret = normalized_regret(start, start, landscape.optimum)
    out = []
    for agent in job["agents"]:
        runs = {n: simulate(landscape, agent, job["seed"], job["iters"], task=job["task"], workers=n)
                for n in job["workers"]}
        one = runs[1]
        for n, r in runs.items():
            finished = max(r.extra["finished_at"].values())
            out.append({"task": job["task"], "agent": agent, "seed": job["seed"], "workers": n,
                        "regret": r.regret[-1], "virtual_time": finished, "kept": r.kept,
                        "false_keeps": r.false_keeps, "decisions": r.decisions, "seconds": r.seconds,
                        "one_worker_regret_then": regret_at(one.regret, one.extra["iteration_exps"],
                                                            one.extra["finished_at"], finished, start_regret)})
    return out


def summarise(results: list[dict], tasks: list[str], agents: list[str], workers: list[int]) -> dict:
    from autoresearch_rl.paired import compare

    out: dict = {}
    for task in tasks:
        entry: dict = {}
        for agent in agents:
            rows = {n: sorted((r for r in results if r["task"] == task and r["agent"] == agent and r["workers"] == n),
                              key=lambda r: r["seed"]) for n in workers}
            one = rows[1]
            per: dict = {}
            for n in workers:
                rs = rows[n]
                regret = [r["regret"] for r in rs]
                then = [r["one_worker_regret_then"] for r in rs]
                per[str(n)] = {
                    "seeds": [r["seed"] for r in rs], "regret": regret, "one_worker_regret_then": then,
                    "median_regret": float(np.median(regret)), "median_one_worker_then": float(np.median(then)),
                    "speedup_median": float(np.median([o["virtual_time"] / r["virtual_time"] for o, r in zip(one, rs)])),
                    "false_keeps_per_100_decisions": 100.0 * sum(r["false_keeps"] for r in rs)
                    / max(1, sum(r["decisions"] for r in rs)),
                    "per_experiment_vs_one": compare(regret, [o["regret"] for o in one], seed=n).to_json(),
                    "per_hour_vs_one": compare(regret, then, seed=n).to_json(),
                }
            entry[agent] = per
        out[task] = entry
    return out


def print_tables(summary: dict, workers: list[int]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200, emoji=False)
    for task, entry in summary.items():
        table = Table(title=f"{task}: median normalised true regret (lower is better); paired against 1 worker",
                      title_justify="left")
        for c in ("agent", "workers", "speed-up", "regret, same runs", "vs 1 worker (w-l, p)", "1 worker, same time",
                  "vs 1 worker same time (w-l, p)", "false keeps /100"):
            table.add_column(c)
        for agent, per in entry.items():
            for n in workers:
                e = per[str(n)]
                pe, ph = e["per_experiment_vs_one"], e["per_hour_vs_one"]
                table.add_row(agent, str(n), f"{e['speedup_median']:.2f}x", f"{e['median_regret']:.3f}",
                              "-" if n == 1 else f"{pe['wins']}-{pe['losses']}, p={pe['p_sign']:.2g}",
                              f"{e['median_one_worker_then']:.3f}",
                              "-" if n == 1 else f"{ph['wins']}-{ph['losses']}, p={ph['p_sign']:.2g}",
                              f"{e['false_keeps_per_100_decisions']:.2f}")
        console.print(table)


def plot(summary: dict, workers: list[int], path: Path, seeds: int, iters: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(summary)
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.8 * len(tasks), 3.8), dpi=110, squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        for agent, per in summary[task].items():
            same_runs = [per[str(n)]["median_regret"] for n in workers]
            same_time = [per[str(n)]["median_one_worker_then"] for n in workers]
            line, = ax.plot(workers, same_runs, marker="o", label=f"{agent}: N workers, {iters} runs")
            ax.plot(workers, same_time, marker="x", linestyle="--", color=line.get_color(),
                    label=f"{agent}: 1 worker, same time")
        ax.set_xscale("log", base=2)
        ax.set_xticks(workers, [str(n) for n in workers])
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("workers")
        ax.set_ylabel("median normalised true regret")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(f"{seeds} paired seeds; solid: N workers after {iters} runs; dashed: 1 worker at the time "
                 "N workers finished", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landscape", default="synthetic,nb201:cifar100,hpobench:kc1")
    parser.add_argument("--agents", default="ppo,evolution,tpe,random")
    parser.add_argument("--workers-list", default="1,2,4,8", help="simulated workers per campaign (1 is the reference)")
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=None, help="JSON result (a PNG is written beside it)")
    args = parser.parse_args(argv)

    from autoresearch_rl.agent.search import SEARCH_AGENTS
    from autoresearch_rl.landscapes.registry import LandscapeSpecError, load_landscape, split_tasks

    tasks = split_tasks(args.landscape)
    agents = [a for a in args.agents.split(",") if a]
    if unknown := [a for a in agents if a not in SEARCH_AGENTS]:
        parser.error(f"unknown agents {unknown}; choose from {', '.join(SEARCH_AGENTS)}")
    try:
        workers = sorted({int(n) for n in args.workers_list.split(",")} | {1})
    except ValueError:
        parser.error(f"--workers-list takes integers, got {args.workers_list!r}")
    if workers[0] < 1:
        parser.error("workers must be >= 1")
    try:
        for t in tasks:
            load_landscape(t, 0)
    except LandscapeSpecError as exc:
        parser.error(str(exc))
    jobs = [{"task": t, "seed": s, "agents": agents, "iters": args.iters, "workers": workers}
            for t in tasks for s in range(args.first_seed, args.first_seed + args.seeds)]
    started = time.perf_counter()
    results: list[dict] = []
    with multiprocessing.get_context("spawn").Pool(args.processes) as pool:
        for i, out in enumerate(pool.imap_unordered(run_seed, jobs), 1):
            results += out
            if i % max(1, len(jobs) // 20) == 0 or i == len(jobs):
                print(f"{i}/{len(jobs)} (task, seed) done, {time.perf_counter() - started:.0f} s", flush=True)
    summary = summarise(results, tasks, agents, workers)
    print_tables(summary, workers)
    print(f"{len(results)} campaigns in {time.perf_counter() - started:.0f} s")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"tasks": tasks, "agents": agents, "workers": workers, "seeds": args.seeds,
                "first_seed": args.first_seed, "iterations": args.iters, "git_sha": git_sha(),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
                "python": platform.python_version(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        out.write_text(json.dumps({"meta": meta, "tasks": summary}, indent=1))
        plot(summary, workers, out.with_suffix(".png"), args.seeds, args.iters)
        print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
