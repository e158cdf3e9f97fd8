"""Search efficiency on a train.py: durable campaigns of the `arl run` loop, for the real cpu-tiny proxy.

The simulated benchmark on public tables runs campaigns in memory (`search_efficiency.py`); this
script runs the train.py path: every agent runs full campaigns as `arl run` does (the core loop on
its event log, the ledger and git history projected from it, the keep rule); only the executor
differs:

- `synthetic`: `autoresearch_rl.synthetic.SyntheticLandscape`, a seeded function of the edit state with
  a known optimum (landscape seed = run seed, so agents are compared over many landscapes). The score
  of an agent at iteration t is the *noise-free* value of its incumbent: what it really found, not
  what its noisy measurements claimed. Regret = that minus the landscape's optimum.
- `cpu-tiny`: the real runner on the cpu-tiny preset (20 s per experiment on 2 cores: hours). The
  score is the incumbent's estimated val_bpb (the mean of its runs). Nothing else may run on the
  machine meanwhile: the budget is wall clock, so cycles taken by other work become fewer steps and
  worse scores (a disturbed calibration run inflates sigma and with it the keep margin).

    python benchmarks/search_durable.py --landscape cpu-tiny --agents ppo,random,greedy,tpe --seeds 2 \\
        --iters 60 --early-abort --root RUNS/real-proxy --out benchmarks/results/search_cpu-tiny.json

Prints a table (median best score at 25/50/100/300 iterations, iterations to reach random search's
final best, ratios against random and TPE), writes the JSON and a PNG of best-so-far with seed bands.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

CHECKPOINTS = (25, 50, 100, 300)


def run_campaign(job: dict) -> dict:
    """One (agent, seed) campaign; returns its per-iteration incumbent score curve."""
    import torch

    torch.set_num_threads(1)
    if job["landscape"] != "synthetic":  # the training processes share the cores fairly between parallel campaigns
        os.environ["ARL_THREADS"] = str(job["threads"])
    from autoresearch_rl.backends.local import InlineBackend
    from autoresearch_rl.campaign import Campaign, RunnerExecutor
    from autoresearch_rl.cli_source import candidate_device
    from autoresearch_rl.core.pruner import CurvePruner
    from autoresearch_rl.decision import KeepRule
    from autoresearch_rl.oracle import OracleConfig
    from autoresearch_rl.real_campaign import real_campaign
    from autoresearch_rl.runner import RunnerConfig
    from autoresearch_rl.selfeval.abort import AbortConfig
    from autoresearch_rl.synthetic import LandscapeConfig, SyntheticLandscape
    from autoresearch_rl.target import template_source

    base = template_source()
    run_dir = Path(job["root"]) / f"{job['agent']}-{job['seed']}"
    preset = "cpu-smoke" if job["landscape"] == "synthetic" else job["landscape"]
    started = time.perf_counter()
    with Campaign.open(run_dir, preset, Path(job["cache"])) as campaign:
        synthetic = None
        if job["landscape"] == "synthetic":
            synthetic = SyntheticLandscape(base, LandscapeConfig(seed=job["seed"]))
            campaign.executor = synthetic
        else:  # every run of the campaign on the campaign's data order, like `arl run`
            campaign.executor = RunnerExecutor(campaign.preset, campaign.cache_dir, campaign.manifest_path,
                                               config=RunnerConfig(data_seed=job["seed"]))
        # the same budget for every agent: the convergence rule is off (improvement_probability=0)
        oracle = OracleConfig(max_iters=job["iters"], improvement_probability=0.0)
        pruner = CurvePruner(campaign.preset.time_budget_s, AbortConfig(), KeepRule()) if job.get("early_abort") else None
        backend = InlineBackend(campaign.executor)
        loop = real_campaign(base, job["agent"], job["seed"], job["iters"], backend, ledger=campaign,
                             device=candidate_device(campaign.preset.device), validate=synthetic is None,
                             oracle=oracle, pruner=pruner)
        campaign.recover()  # a killed benchmark resumes its campaigns
        try:
            loop.run()
        finally:
            backend.shutdown()
            loop.c.store.close()  # type: ignore[attr-defined]
    return curve_of(job, run_dir, synthetic, time.perf_counter() - started)


def curve_of(job: dict, run_dir: Path, synthetic, seconds: float) -> dict:
    """The incumbent's score after each iteration; a campaign stopped early keeps its last incumbent (padded)."""
    import statistics

    from autoresearch_rl.ledger import Ledger
    from autoresearch_rl.target import template_source

    base = template_source()
    with Ledger.open(run_dir, create=False) as ledger:
        rows = ledger.experiments()
        meta = ledger.meta()
    if synthetic is not None:
        baseline = synthetic.noise_free(base)[0]
        score_of = {r.id: r.summary.get("noise_free_val_bpb") for r in rows}
    else:
        baseline = meta["baseline_mean"]
        score_of = {}
    curve, current = [], baseline
    confirmations: dict[int, list[float]] = {}
    for r in rows:
        if r.role == "confirmation" and r.val_bpb is not None and r.parent_id is not None:
            confirmations.setdefault(r.parent_id, []).append(r.val_bpb)
    for r in rows:
        if r.role != "candidate" or r.reward is None:
            continue
        if r.status.value == "KEPT":
            current = score_of[r.id] if synthetic is not None else statistics.fmean([r.val_bpb, *confirmations.get(r.id, [])])
        curve.append(current)
    stopped_at = len(curve)
    curve += [current] * (job["iters"] - len(curve))
    return {"agent": job["agent"], "seed": job["seed"], "curve": curve, "baseline": baseline, "stopped_at": stopped_at,
            "stop_rule": meta.get("stop_rule"),
            "optimum": synthetic.optimum if synthetic is not None else None, "seconds": seconds,
            "verified": meta.get("verified"),  # `arl verify`: the best and the baseline re-run on fresh seeds
            "kept": sum(r.status.value == "KEPT" for r in rows if r.role == "candidate"),
            "failed": sum(r.status.failed for r in rows if r.role == "candidate")}


def _at(curve: list[float], t: int) -> float:
    return curve[min(t, len(curve)) - 1]


def verified_gain(result: dict) -> float | None:
    """The gain `arl verify` measured on fresh seeds; 0 for a campaign that kept nothing; None until verified."""
    if result.get("verified"):
        return result["verified"]["gain"]
    return 0.0 if result["kept"] == 0 else None


def summarise(results: list[dict], agents: list[str], iters: int) -> dict:
    by_agent = {a: [r for r in results if r["agent"] == a] for a in agents}
    points = sorted({min(t, iters) for t in CHECKPOINTS})
    summary: dict = {}
    for agent, runs in by_agent.items():
        best_at = {str(t): statistics.median(_at(r["curve"], t) for r in runs) for t in points}
        entry = {"best_at": best_at, "curves": {str(r["seed"]): r["curve"] for r in runs},
                 "final": [r["curve"][-1] for r in runs], "kept_mean": statistics.fmean(r["kept"] for r in runs),
                 "failed_mean": statistics.fmean(r["failed"] for r in runs),
                 "seconds_mean": statistics.fmean(r["seconds"] for r in runs),
                 "stopped_at": [r["stopped_at"] for r in runs]}
        if runs and runs[0]["optimum"] is not None:
            entry["regret_at"] = {str(t): statistics.median(_at(r["curve"], t) - r["optimum"] for r in runs) for t in points}
            entry["final_regret"] = [r["curve"][-1] - r["optimum"] for r in runs]
        else:
            entry["final_gain"] = [r["baseline"] - r["curve"][-1] for r in runs]
            entry["verified_gain"] = [verified_gain(r) for r in runs]
        summary[agent] = entry
    if "random" in summary:
        target = statistics.median(summary["random"]["final"])
        for agent, entry in summary.items():
            median_curve = [statistics.median(c[i] for c in entry["curves"].values()) for i in range(iters)]
            entry["iters_to_random_final"] = next((i + 1 for i, v in enumerate(median_curve) if v <= target), None)
    for ref in ("random", "tpe"):
        if ref not in summary:
            continue
        for agent, entry in summary.items():
            key = "final_regret" if "final_regret" in entry else "final_gain"
            mine, theirs = statistics.median(entry[key]), statistics.median(summary[ref][key])
            entry[f"ratio_vs_{ref}"] = (mine / theirs) if theirs else None
    return summary


def plot(summary: dict, path: Path, title: str, iters: int, landscape: str = "synthetic") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    xs = list(range(1, iters + 1))
    for agent, entry in summary.items():
        curves = list(entry["curves"].values())
        med = [statistics.median(c[i] for c in curves) for i in range(iters)]
        lo = [sorted(c[i] for c in curves)[len(curves) // 4] for i in range(iters)]
        hi = [sorted(c[i] for c in curves)[(3 * len(curves)) // 4] for i in range(iters)]
        n = max(entry.get("stopped_at") or [iters])  # a run summarised before its end: draw what it did
        line, = ax.plot(xs[:n], med[:n], label=f"{agent} (median of {len(curves)})", linewidth=2)
        ax.fill_between(xs[:n], lo[:n], hi[:n], color=line.get_color(), alpha=0.15)
    ax.set_xlabel("iteration")
    ax.set_ylabel("incumbent val_bpb, noise-free" if landscape == "synthetic"
                  else "incumbent val_bpb (mean of its runs)")
    ax.set_title(title + " (bands: interquartile range over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_table(summary: dict, landscape: str) -> None:
    from rich.console import Console
    from rich.table import Table

    synthetic = landscape == "synthetic"
    table = Table(title=f"search efficiency on {landscape}: median over seeds (lower is better)", title_justify="left")
    columns = ["agent", *[f"best@{t}" for t in next(iter(summary.values()))["best_at"]]]
    columns += ["final regret (IQR)" if synthetic else "final gain", "iters to random's final", "vs random", "vs tpe",
                "kept", "failed"] + ([] if synthetic else ["verified gain (seeds)"])
    for c in columns:
        table.add_column(c)
    for agent, e in summary.items():
        key = "final_regret" if synthetic else "final_gain"
        values = sorted(e[key])
        spread = f"{statistics.median(values):.4f} ({values[len(values) // 4]:.4f}-{values[(3 * len(values)) // 4]:.4f})"
        ratio = lambda k: "-" if e.get(k) is None else f"{e[k]:.2f}"  # noqa: E731
        table.add_row(agent, *[f"{v:.4f}" for v in e["best_at"].values()], spread,
                      str(e.get("iters_to_random_final") or "never"), ratio("ratio_vs_random"), ratio("ratio_vs_tpe"),
                      f"{e['kept_mean']:.1f}", f"{e['failed_mean']:.1f}", *([] if synthetic else [_verified(e)]))
    Console(width=200).print(table)
    what = "regret" if synthetic else "gain over the baseline"
    print(f"ratios: median final {what} of the agent / that of the reference "
          f"({'< 1' if synthetic else '> 1'} means better than the reference)")


def _verified(entry: dict) -> str:
    gains = [g for g in entry["verified_gain"] if g is not None]
    if not gains:
        return "not verified"
    return f"{statistics.median(gains):+.4f} ({len(gains)}/{len(entry['verified_gain'])})"


def _interrupted(signum: int, frame: object) -> None:
    """SIGTERM as Ctrl-C: leaving the `with Pool` block terminates the workers instead of orphaning them.
    A campaign killed this way resumes where it stopped when the same `--root` is run again."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landscape", choices=("synthetic", "cpu-tiny"), default="synthetic")
    parser.add_argument("--agents", default="ppo,random,greedy,tpe",
                        help="comma-separated names of `arl run --agent` (e.g. ppo_meta_frozen: the shipped policy, "
                             "never updated)")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2, help="campaigns in parallel (processes)")
    parser.add_argument("--out", default=None, help="JSON result (a PNG is written beside it)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--reuse", default=None, help="summarise the run directories of an earlier invocation")
    parser.add_argument("--root", default=None,
                        help="keep the campaigns here (default: a new temporary directory); campaigns already there "
                             "are resumed where they stopped, so a long real-proxy run can be continued")
    parser.add_argument("--early-abort", action="store_true",
                        help="cpu-tiny: stop doomed runs early (selfeval/abort.py), the same rule for every agent")
    args = parser.parse_args(argv)

    from rich.progress import Progress

    from autoresearch_rl.env.data import default_cache_dir, prepare_dataset
    from autoresearch_rl.env.presets import get_preset

    agents = args.agents.split(",")
    cache = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    prepare_dataset(get_preset("cpu-smoke" if args.landscape == "synthetic" else args.landscape), cache)
    shm = Path("/dev/shm")
    if args.root:
        root = Path(args.root).resolve()
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="arl-bench-", dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))
    threads = max(1, (os.cpu_count() or 1) // args.workers)
    jobs = [{"agent": a, "seed": s, "iters": args.iters, "landscape": args.landscape, "root": str(root), "cache": str(cache),
             "threads": threads, "early_abort": args.early_abort}
            for s in range(args.seeds) for a in agents]
    started = time.perf_counter()
    results = []
    if args.reuse:
        from autoresearch_rl.synthetic import LandscapeConfig, SyntheticLandscape
        from autoresearch_rl.target import template_source

        missing = []
        for job in jobs:
            run_dir = Path(args.reuse) / f"{job['agent']}-{job['seed']}"
            if not (run_dir / "ledger.sqlite").is_file():
                missing.append(run_dir.name)
                continue
            synthetic = (SyntheticLandscape(template_source(), LandscapeConfig(seed=job["seed"]))
                         if args.landscape == "synthetic" else None)
            try:
                results.append(curve_of(job, run_dir, synthetic, 0.0))
            except KeyError:  # stopped before its calibration gave a baseline
                missing.append(run_dir.name)
        if missing:  # a long run summarised before it ended: say what the table leaves out
            print(f"not started or not calibrated, left out of the table: {', '.join(missing)}")
        jobs = [job for job in jobs if f"{job['agent']}-{job['seed']}" not in missing]
        agents = [a for a in agents if any(job["agent"] == a for job in jobs)]
        root = Path(args.reuse)
    else:
        ctx = multiprocessing.get_context("spawn")
        signal.signal(signal.SIGTERM, _interrupted)  # `kill` of this script ends its campaigns too (the pool's exit)
        try:
            with Progress() as progress, ctx.Pool(args.workers) as pool:
                task = progress.add_task(f"{len(jobs)} campaigns x {args.iters} iterations", total=len(jobs))
                for result in pool.imap_unordered(run_campaign, jobs):
                    results.append(result)
                    progress.advance(task)
        except KeyboardInterrupt:
            print(f"stopped after {len(results)} of {len(jobs)} campaigns; run it again with --root {root} to resume")
            return 130
    early = [f"{r['agent']}-{r['seed']} ({r['stop_rule']} at {r['stopped_at']})" for r in results if r["stopped_at"] < args.iters]
    if early:
        print("stopped before the last iteration (final incumbent carried forward): " + ", ".join(early))
    summary = summarise(results, agents, args.iters)
    print_table(summary, args.landscape)
    elapsed = time.perf_counter() - started
    print(f"{len(jobs)} campaigns in {elapsed:.0f} s on {os.cpu_count()} cores; run dirs in {root}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"landscape": args.landscape, "agents": summary, "seeds": args.seeds, "iters": args.iters,
                   "keep_rule": "noise (2 sigma, confirmation below 4 sigma) for every agent",
                   "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
                   "python": platform.python_version(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "seconds": elapsed, "stopped_early": early, "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])}
        out.write_text(json.dumps(payload, indent=1))
        plot(summary, out.with_suffix(".png"), f"{args.landscape}: {args.seeds} seeds x {args.iters} iterations", args.iters,
             args.landscape)
        print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
