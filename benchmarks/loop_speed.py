"""Decisions per second of a simulated campaign: the controller core in memory, on its durable event store, and
as `arl run` runs it (with the ledger projection), on one core.

    python benchmarks/loop_speed.py --iters 200 --out benchmarks/results/loop_speed.json

Rows: `arl-run` is `real_campaign.py` with a run directory's ledger on the train.py synthetic landscape
(`synthetic.py`): the events, the ledger rows projected from them, a train.py rendered and committed to git
per run; `core, memory` and `core, durable` are `core.loop.Loop` on the config-space synthetic landscape
(`landscapes/synthetic.py`), in memory and on `ledger/event_store.py` + git.
Prints a table, writes the JSON and a PNG (decisions per second, log scale).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path


def arl_run_loop(agent: str, iters: int, root: Path) -> float:
    """The loop `arl run` runs (the core `Loop` on its event log, the ledger and git projected from it) on the
    train.py synthetic landscape: every decision also renders a train.py, commits it and writes ledger rows."""
    from autoresearch_rl.backends.local import InlineBackend
    from autoresearch_rl.campaign import Campaign
    from autoresearch_rl.env.data import default_cache_dir, prepare_dataset
    from autoresearch_rl.env.presets import get_preset
    from autoresearch_rl.oracle import OracleConfig
    from autoresearch_rl.real_campaign import real_campaign
    from autoresearch_rl.synthetic import LandscapeConfig, SyntheticLandscape
    from autoresearch_rl.target import template_source

    cache = default_cache_dir()
    prepare_dataset(get_preset("cpu-smoke"), cache)
    base = template_source()
    started = time.perf_counter()
    with Campaign.open(root / f"arl-run-{agent}", "cpu-smoke", cache) as campaign:
        campaign.executor = SyntheticLandscape(base, LandscapeConfig(seed=0))
        loop = real_campaign(base, agent, 0, iters, InlineBackend(campaign.executor), ledger=campaign, validate=False,
                             oracle=OracleConfig(max_iters=iters, improvement_probability=0.0))
        loop.run()
        loop.c.store.close()  # type: ignore[attr-defined]
    return time.perf_counter() - started


def core_loop(agent: str, iters: int, run_dir: Path | None) -> float:
    from autoresearch_rl.landscapes.registry import load_landscape
    from autoresearch_rl.simulate import simulate

    landscape = load_landscape("synthetic", 0)
    started = time.perf_counter()
    simulate(landscape, agent, 0, iters, run_dir=run_dir)
    return time.perf_counter() - started


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(8, 3.8), dpi=110)
    labels = [f"{r['agent']}: {r['loop']}" for r in rows]
    ax.barh(labels, [r["decisions_per_s"] for r in rows], color=["C3" if "arl-run" in r["loop"] else "C0" for r in rows])
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.axvline(400, color="k", linestyle="--", linewidth=1, label="400 decisions/s")
    ax.set_xlabel("decisions per second, one core (log)")
    ax.legend(loc="lower right")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--arl-run-iters", type=int, default=None,
                        help="iterations of the arl-run rows (default: --iters)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    core_loop("ppo_prior", 10, None)  # imports and first-call costs out of the timings
    root = Path(tempfile.mkdtemp(prefix="arl-speed-"))
    arl_run_iters = args.arl_run_iters or args.iters
    rows = []
    for agent, label in (("greedy", "greedy"), ("ppo_prior", "PPO")):  # PPO learning online from its prior
        seconds = arl_run_loop(agent, arl_run_iters, root)
        rows.append({"loop": "arl-run (events + ledger + git)", "agent": label, "iters": arl_run_iters,
                     "seconds": seconds})
        for where, run_dir in (("core, memory", None), ("core, durable (SQLite + git)", root / f"core-{agent}")):
            seconds = core_loop(agent, args.iters, run_dir)
            rows.append({"loop": where, "agent": label, "iters": args.iters, "seconds": seconds})
    for r in rows:
        r["decisions_per_s"] = r["iters"] / r["seconds"]
        ref = next(x for x in rows if x["agent"] == r["agent"] and x["loop"].startswith("arl-run"))
        r["speedup"] = r["decisions_per_s"] / ref["decisions_per_s"]
    print(f"{'loop':32s} {'agent':7s} {'iters':>6s} {'seconds':>9s} {'decisions/s':>12s} {'x arl-run':>10s}")
    for r in rows:
        print(f"{r['loop']:32s} {r['agent']:7s} {r['iters']:6d} {r['seconds']:9.2f} {r['decisions_per_s']:12.1f} "
              f"{r['speedup']:10.1f}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"rows": rows, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                                   "python": platform.python_version(),
                                   "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}, indent=1))
        plot(rows, out.with_suffix(".png"))
        print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
