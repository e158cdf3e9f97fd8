"""Scale-out throughput: experiments per hour with 1 and N workers, on the local backend and on Ray.

Each configuration is a fresh campaign through the real CLI (`arl run`) on the same preset, agent and
seed, for the same number of iterations; experiments per hour come from the ledger (`arl status
--json`: finished experiments / campaign wall clock), as do per-worker utilisations. Run it on a quiet
machine: the configurations run one after another and share nothing but the prepared data cache.

On a CPU machine N workers share the cores (each gets cores/N threads, and every record says so), so
an experiment's val_bpb under N workers is not comparable with one under 1 worker; the table is about
throughput. On a GPU machine each worker gets its own GPU and results are comparable.

    python benchmarks/scaleout.py --preset cpu-tiny --iters 6 --configs local:1,local:2,ray:2
    python benchmarks/scaleout.py --preset cpu-smoke --iters 4 --configs local:1,local:2     # quick (~2 min)

Writes benchmarks/results/scaleout_<preset>.json and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def arl(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("arl") or str(Path(sys.executable).with_name("arl"))
    return subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True)


def run_config(backend: str, workers: int, args: argparse.Namespace, env: dict[str, str], work: Path) -> dict:
    run_dir = work / f"{backend}-{workers}"
    started = time.perf_counter()
    cmd = ["run", "--preset", args.preset, "--agent", args.agent, "--max-iters", str(args.iters), "--seed", str(args.seed),
           "--calibration-seeds", str(args.calibration_seeds), "--run-dir", str(run_dir), "--workers", str(workers),
           "--backend", backend, "--no-early-abort", "--audit-fraction", "0"]
    done = arl(*cmd, env=env, cwd=work)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{backend}:{workers} failed:\n{done.stderr[-3000:]}")
    status = json.loads(arl("status", "--run-dir", str(run_dir), "--json", env=env, cwd=work).stdout)
    return {"backend": backend, "workers": workers, "wall_s": round(wall, 1), "experiments": status["experiments"],
            "experiments_per_hour": status["experiments_per_hour"], "per_hour_by_wall": round(status["experiments"] / wall * 3600, 2),
            "workers_usage": status["workers"], "best_val_bpb": status["best_val_bpb"],
            "baseline_val_bpb": status["baseline_val_bpb"], "counts": status["counts"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu-tiny")
    parser.add_argument("--agent", default="random", help="the proposer (its choice does not matter for throughput)")
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--calibration-seeds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", default="local:1,local:2,ray:2", help="backend:workers, comma separated")
    parser.add_argument("--cache-dir", default=None, help="prepared data (default: $ARL_HOME or the default cache)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    env = dict(os.environ)
    if args.cache_dir:
        env["ARL_HOME"] = args.cache_dir
    work = Path(tempfile.mkdtemp(prefix="arl-scaleout-"))
    prep = arl("prepare", "--preset", args.preset, env=env, cwd=work)
    if prep.returncode != 0:
        raise SystemExit(prep.stderr)
    results = []
    for item in args.configs.split(","):
        backend, workers = item.split(":")
        print(f"running {backend} with {workers} worker(s) ...", flush=True)
        results.append(run_config(backend, int(workers), args, env, work))
    base = results[0]["experiments_per_hour"] or 1.0
    print(f"\n{'backend':8} {'workers':>7} {'experiments':>11} {'wall s':>8} {'exp/hour':>9} {'x first':>8}  utilisation")
    for r in results:
        usage = ", ".join(f"{w['worker']} {100 * w['utilisation']:.0f}%" for w in r["workers_usage"])
        print(f"{r['backend']:8} {r['workers']:>7} {r['experiments']:>11} {r['wall_s']:>8.0f} "
              f"{r['experiments_per_hour']:>9.1f} {r['experiments_per_hour'] / base:>8.2f}  {usage}")
    out = Path(args.out) if args.out else RESULTS / f"scaleout_{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.node(),
               "cpus": os.cpu_count(), "python": platform.python_version(), "args": vars(args), "results": results}
    out.write_text(json.dumps(payload, indent=1))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    labels = [f"{r['backend']} x{r['workers']}" for r in results]
    ax.bar(labels, [r["experiments_per_hour"] for r in results], color=["#3d4852", "#1f9d55", "#de751f", "#6574cd"][:len(results)])
    for i, r in enumerate(results):
        ax.text(i, r["experiments_per_hour"], f"{r['experiments_per_hour']:.0f}/h ({r['experiments_per_hour'] / base:.2f}x)",
                ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("experiments per hour")
    ax.set_title(f"{args.preset}: {args.iters} iterations + {args.calibration_seeds} calibration runs per configuration",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"))
    print(f"\nwrote {out} and {out.with_suffix('.png')}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
