"""A real train.py campaign through the core loop (the `Loop` of the simulated campaigns), then its best verified.

    python benchmarks/core_real.py --preset cpu-tiny --agent ppo --iters 20 --seed 0 \\
        --root /tmp/core-real --out benchmarks/results/core_real_cpu-tiny.json

The campaign is `real_campaign.py`: configurations of the template train.py (constants and structural
variants), proposed by the search agent, trained and scored by the real runner on local slots, durable
in `ROOT/run` (SQLite event log, every run's train.py in git; re-running resumes). Doomed candidates
are stopped early on their loss curves as in `arl run` (`core/pruner.py`; `--no-early-abort`). The run
directory's ledger is a projection of the events, so `arl status`, `arl report` and `arl verify
--run-dir ROOT/run` read it. Then `arl verify`'s check runs: the base and the best train.py re-run
interleaved on fresh seeds, never those of the search, and the verified gain is their difference with
a 95% Welch interval (stored in the ledger: a re-run of this script reuses it). Prints a
table, writes the JSON and a PNG (each run's val_bpb in order, the kept ones marked).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from search_efficiency import git_sha


def plot(state, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    xs = [e.exp for e in state.experiments if e.outcome == "scored"]
    ys = [e.value for e in state.experiments if e.outcome == "scored"]
    ax.scatter(xs, ys, s=14, color="grey", label="scored run")
    kept = [e for e in state.edits if e.verdict == "kept"]
    ax.scatter([e.exp for e in kept], [e.value for e in kept], s=40, color="tab:green", label="kept")
    failed = [e.exp for e in state.experiments if e.outcome in ("crashed", "aborted")]
    if ys:
        ax.scatter(failed, [max(ys)] * len(failed), marker="x", color="tab:red", label="crashed or rejected")
    ax.set_xlabel("experiment")
    ax.set_ylabel("val_bpb (lower is better)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu-tiny")
    parser.add_argument("--agent", default="ppo", help="a search agent of agent/search (ppo, evolution, gp_local, ...)")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="local training slots")
    parser.add_argument("--verify-runs", type=int, default=3, help="fresh-seed runs of base and best each")
    parser.add_argument("--no-early-abort", action="store_true", help="every candidate trains its full budget")
    parser.add_argument("--root", required=True, help="the campaign's directory (re-running resumes it)")
    parser.add_argument("--out", default=None, help="JSON result (a PNG is written beside it)")
    args = parser.parse_args(argv)

    from autoresearch_rl.backends.local import LocalBackend, local_slots
    from autoresearch_rl.campaign import Campaign
    from autoresearch_rl.cli_source import candidate_device
    from autoresearch_rl.core.pruner import CurvePruner
    from autoresearch_rl.env.data import default_cache_dir, prepare_dataset
    from autoresearch_rl.env.presets import get_preset
    from autoresearch_rl.real_campaign import real_campaign
    from autoresearch_rl.target import template_source
    from autoresearch_rl.target.grid import train_py_space
    from autoresearch_rl.verify import verify

    root = Path(args.root).resolve()
    preset = get_preset(args.preset)
    cache = default_cache_dir()
    prepare_dataset(preset, cache)
    base = template_source()
    device = candidate_device(preset.device)
    space, _ = train_py_space(base, device)
    started = time.perf_counter()

    def show(event, state) -> None:
        name = type(event).__name__
        if name in ("Scored", "Crashed", "Aborted", "Decided", "Calibrated", "Stopped"):
            shown = replace(event, details={}) if hasattr(event, "details") else event  # not the run's whole record
            print(f"{time.perf_counter() - started:7.0f}s {shown}", flush=True)

    # the run directory's ledger is a projection of the events: `arl status/report/verify --run-dir ROOT/run` read it
    with Campaign.open(root / "run", preset.name, cache) as campaign:
        backend = LocalBackend(campaign.get_executor(), local_slots(args.workers, device=device))
        pruner = None if args.no_early_abort else CurvePruner(preset.time_budget_s)  # arl run's early abort
        loop = real_campaign(base, args.agent, args.seed, args.iters, backend, device=device, pruner=pruner,
                             ledger=campaign, listeners=(show,))
        try:
            state = loop.run()
        finally:
            backend.shutdown()
            loop.c.store.close()  # type: ignore[attr-defined]
        searched = time.perf_counter() - started

        def shown(arm: str, seed: int, value: float | None) -> None:
            print(f"verify {arm}: seed {seed} -> {value}", flush=True)

        result = verify(campaign, runs_each=args.verify_runs, on_run=shown)  # `arl verify`: stored, not re-run
    verified = None if result is None else {**result.to_json(), "verified": result.significant}

    def changed(config) -> dict:
        return {k: v for k, v, b in zip(space.knobs, space.values(config).values(), space.values(state.start).values())
                if v != b}
    kept = [e for e in state.edits if e.verdict == "kept"]
    speeds = [e.throughput for e in state.experiments if e.throughput]
    print(f"\n{state.iterations} iterations, {len(state.experiments)} runs in {searched:.0f} s; sigma {state.sigma:.4f}; "
          f"baseline {state.baseline:.4f}; incumbent {state.incumbent_value:.4f} ({len(kept)} kept)")
    for e in kept:
        print(f"  kept experiment {e.exp}: {e.value:.4f}  " + ", ".join(f"{k}={v}" for k, v in changed(e.config).items()))
    if verified:
        print(f"verified gain {verified['gain']:+.4f} (95% CI {verified['ci95_low']:+.4f} .. {verified['ci95_high']:+.4f}): "
              + ("a verified improvement" if verified["verified"] else "no verified improvement"))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "meta": {"preset": preset.name, "agent": args.agent, "seed": args.seed, "iterations": args.iters,
                     "workers": args.workers, "git_sha": git_sha(),
                     "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
                     "date": datetime.now(timezone.utc).isoformat(timespec="seconds")},
            "runs": [{"exp": e.exp, "kind": e.kind, "outcome": e.outcome, "value": e.value, "verdict": e.verdict,
                      "seconds": e.cost_s, "tokens_per_s": e.throughput,
                      "changed": {k: str(v) for k, v in changed(e.config).items()}}
                     for e in state.experiments],
            "sigma": state.sigma, "baseline": state.baseline, "incumbent_value": state.incumbent_value,
            "kept": len(kept), "search_seconds": searched,
            "throughput_median": statistics.median(speeds) if speeds else None, "verified": verified,
        }
        out.write_text(json.dumps(result, indent=1))
        plot(state, out.with_suffix(".png"), f"core loop, {args.agent} on {preset.name}, seed {args.seed}: "
             f"{len(kept)} kept" + (f", verified gain {verified['gain']:+.4f}" if verified else ""))
        print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
