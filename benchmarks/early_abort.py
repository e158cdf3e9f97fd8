"""Early abort: campaigns with and without it at equal wall clock; the false-abort rate two ways.

Two campaigns of the real CLI (`arl run`, same preset, agent and seed) run side by side for the same
wall-clock budget (`--max-hours`), each with one thread per experiment (ARL_THREADS=1) so they share
the machine equally: one with early abort, one without. Reported per campaign: experiments per hour,
candidates decided, aborted runs, best val_bpb, and device time saved.

False aborts are measured twice:
- online, in the abort campaign: shadow runs (the rule fired, the run was finished anyway) that were kept;
- offline, on the campaign *without* abort (every run finished: ground truth): the abort rule is
  replayed on each candidate's recorded loss curve against the incumbent it was derived from, at the
  same check fractions the live monitor uses; a false abort is a run it would have stopped that was kept.
  This uses every candidate, not only the shadow sample.

    python benchmarks/early_abort.py --preset cpu-tiny --hours 0.25
    python benchmarks/early_abort.py --replay RUN_DIR [RUN_DIR ...]  # only the offline replay on finished campaigns

Writes benchmarks/results/early_abort_<preset>.json and .png (curves of both campaigns).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

if importlib.util.find_spec("autoresearch_rl") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from autoresearch_rl.experiment import Status  # noqa: E402
from autoresearch_rl.ledger import Ledger  # noqa: E402
from autoresearch_rl.logparse import ProgressPoint  # noqa: E402
from autoresearch_rl.selfeval.abort import AbortConfig, assess, budget_fraction, measured_errors, next_check  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def replay(run_dir: Path, budget_s: float, config: AbortConfig = AbortConfig(), shadow_seed: int = 0) -> dict:
    """Replay the abort rule on every finished candidate of a campaign that ran without it, in order, as a live
    campaign would have met them: each candidate is judged with the prediction errors (rule 3) of those before it
    that would have been scored (not stopped, or drawn as shadows with the config's probability, seeded)."""
    with Ledger.open(run_dir, create=False) as ledger:
        rows = ledger.experiments()
        meta = ledger.meta()
    by_id = {r.id: r for r in rows}
    margin = float(meta["keep_margin"])
    judged = fired = false = 0
    saved_s = 0.0  # what the stopped runs would not have spent: the rest of their training, the export, the evaluation
    details = []
    scored: list[tuple[list, float]] = []  # (the checks' predictions, val_bpb) of the candidates replayed so far
    shadows = random.Random(shadow_seed)
    for r in rows:
        if r.role != "candidate" or r.status not in (Status.KEPT, Status.DISCARDED) or not r.summary.get("curve"):
            continue
        parent = by_id.get(r.parent_id)
        if parent is None or not parent.summary.get("curve") or "final_train_loss" not in parent.summary:
            continue
        spec = config.spec(incumbent_curve=parent.summary["curve"], incumbent_final_loss=parent.summary["final_train_loss"],
                           incumbent_val_bpb=float(r.proposal["incumbent_val_bpb"]), margin=margin, budget_s=budget_s,
                           prediction_errors=measured_errors(scored, config.warmup_fraction, config.check_every_fraction))
        points = [ProgressPoint(step=i, elapsed=p[0], loss=p[1], tokens=p[2] if len(p) > 2 else None)
                  for i, p in enumerate(r.summary["curve"])]
        judged += 1
        check, verdict, predictions = spec.warmup_fraction, None, []
        for n in range(1, len(points) + 1):
            fraction = budget_fraction(points[n - 1], budget_s)
            if fraction < check:
                continue
            check = next_check(spec, fraction)
            v = assess(spec, points[:n])
            predictions.append([v.fraction, v.curve_val_bpb, v.curve_sd])
            if v.abort and verdict is None:
                verdict = v
        shadow = verdict is not None and shadows.random() < config.shadow_probability
        if verdict is None or shadow:  # a live campaign scores it, and learns its prediction errors
            scored.append((predictions, float(r.val_bpb)))
        if verdict is not None:
            fired += 1
            false += r.status is Status.KEPT
            if not shadow:
                saved_s += r.timings.training * max(0.0, 1.0 - verdict.fraction) + r.timings.save + r.timings.evaluation
            details.append({"id": r.id, "status": r.status.value, "at": round(verdict.fraction, 3), "shadow": shadow,
                            "predicted": round(verdict.predicted_val_bpb, 4), "val_bpb": r.val_bpb})
    finished = [r.finished_at for r in rows if r.finished_at is not None]
    wall_s = max(finished) - min(r.created_at for r in rows) if finished else 0.0
    return {"judged": judged, "would_abort": fired, "false_aborts": false,
            "false_abort_rate": false / fired if fired else None, "kept": sum(r.status is Status.KEPT for r in rows),
            "saved_s": round(saved_s, 1), "wall_s": round(wall_s, 1),
            # the same experiments in less time: assumes the campaign would have gone on with the same mix of runs
            "projected_ratio": round(wall_s / (wall_s - saved_s), 3) if wall_s > saved_s else None,
            "details": details}


def abort_rules(run_dir: Path) -> dict:
    """Which rule stopped each aborted run: the measured errors (rule 3), the noise model (2), a broken curve (1)."""
    with Ledger.open(run_dir, create=False) as ledger:
        reasons = [r.summary.get("abort_reason", "") for r in ledger.experiments() if r.status is Status.ABORTED]
    measured = sum("errors measured" in reason for reason in reasons)
    broken = sum(reason.startswith(("diverged", "non-finite")) for reason in reasons)
    return {"measured": measured, "model": len(reasons) - measured - broken, "broken": broken}


def campaign_stats(run_dir: Path) -> dict:
    out = subprocess.run([shutil.which("arl") or str(Path(sys.executable).with_name("arl")), "status", "--run-dir",
                          str(run_dir), "--json"], capture_output=True, text=True)
    s = json.loads(out.stdout)
    return {k: s[k] for k in ("experiments", "iterations", "kept", "counts", "experiments_per_hour", "best_val_bpb",
                              "baseline_val_bpb", "noise_sigma", "early_abort", "elapsed_hours")}


def plot(runs: dict[str, Path], path: Path) -> None:
    fig, axes = plt.subplots(1, len(runs), figsize=(12, 4.5), dpi=120, sharey=True)
    colors = {Status.KEPT: "#1f9d55", Status.DISCARDED: "#9aa5b1", Status.ABORTED: "#de751f"}
    for ax, (label, run_dir) in zip(axes, runs.items()):
        with Ledger.open(run_dir, create=False) as ledger:
            rows = ledger.experiments()
        finals = []
        for r in rows:
            if r.role == "candidate" and r.status in colors and r.summary.get("curve"):
                t, loss = zip(*((p[0], p[1]) for p in r.summary["curve"]))
                ax.plot(t, loss, color=colors[r.status], linewidth=0.8, alpha=0.8)
                finals.append(loss[-1])
        n = {s: sum(r.status is s for r in rows) for s in colors}
        ax.set_title(f"{label}: kept {n[Status.KEPT]}, discarded {n[Status.DISCARDED]}, aborted {n[Status.ABORTED]}",
                     fontsize=9)
        ax.set_xlabel("training seconds")
        if finals:
            ax.set_ylim(min(finals) * 0.95, max(finals) * 1.5)
    axes[0].set_ylabel("train loss")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu-tiny")
    parser.add_argument("--agent", default="ppo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hours", type=float, default=0.25, help="wall clock of each campaign (they run side by side)")
    parser.add_argument("--replay", nargs="+", default=None, metavar="RUN_DIR",
                        help="only replay the rule on these campaign directories (finished candidates are the truth)")
    parser.add_argument("--abort-z", type=float, default=AbortConfig.z, help="the rule's base threshold (arl run --abort-z)")
    parser.add_argument("--measured-z", type=float, default=AbortConfig.measured_z,
                        help="threshold of the measured-error rule (arl run --abort-measured-z)")
    parser.add_argument("--warmup", type=float, default=AbortConfig.warmup_fraction,
                        help="budget fraction of the first check (replay only: what a live campaign would use)")
    parser.add_argument("--check-every", type=float, default=AbortConfig.check_every_fraction,
                        help="budget fraction between checks (replay only)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from autoresearch_rl.env.presets import get_preset

    budget = get_preset(args.preset).time_budget_s
    if args.replay:
        config = AbortConfig(z=args.abort_z, measured_z=args.measured_z, warmup_fraction=args.warmup,
                             check_every_fraction=args.check_every)
        for run_dir in args.replay:
            result = replay(Path(run_dir), budget, config)
            print(json.dumps({"run_dir": run_dir, **{k: v for k, v in result.items() if k != "details"}}))
        return
    work = Path(tempfile.mkdtemp(prefix="arl-abort-"))
    env = {**os.environ, "ARL_THREADS": "1"}
    exe = shutil.which("arl") or str(Path(sys.executable).with_name("arl"))
    subprocess.run([exe, "prepare", "--preset", args.preset], env=env, check=True, capture_output=True)
    runs = {"with abort": work / "abort", "without": work / "full"}
    started = time.perf_counter()
    procs = []
    for label, run_dir in runs.items():
        cmd = [exe, "run", "--preset", args.preset, "--agent", args.agent, "--seed", str(args.seed),
               "--max-hours", str(args.hours), "--run-dir", str(run_dir)]
        cmd += ["--no-early-abort"] if label == "without" else ["--abort-z", str(args.abort_z)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(work / f"{run_dir.name}.log", "w")))
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"a campaign failed: see {work}")
    wall = time.perf_counter() - started
    stats = {label: campaign_stats(run_dir) for label, run_dir in runs.items()}
    offline = replay(runs["without"], budget, AbortConfig(z=args.abort_z))
    a, b = stats["with abort"], stats["without"]
    ratio = a["experiments_per_hour"] / b["experiments_per_hour"]
    print(f"\n{'campaign':12} {'experiments':>11} {'candidates':>10} {'aborted':>7} {'exp/hour':>9} {'best val_bpb':>12}")
    for label, s in stats.items():
        aborted = s["counts"].get("ABORTED", 0)
        print(f"{label:12} {s['experiments']:>11} {s['iterations']:>10} {aborted:>7} {s['experiments_per_hour']:>9.1f} "
              f"{s['best_val_bpb']:>12.4f}")
    print(f"\nexperiments per hour with / without: {ratio:.2f}x (goal >= 1.35x)")
    online = a["early_abort"] or {}
    rules = abort_rules(runs["with abort"])
    print(f"aborted by the measured-error rule {rules['measured']}, by the noise model {rules['model']}, "
          f"broken curves {rules['broken']}")
    print(f"false aborts online (shadow runs): {online.get('false_aborts')}/{online.get('shadow_would_abort')}")
    print(f"false aborts offline (replay on the campaign without abort): {offline['false_aborts']}/{offline['would_abort']} "
          f"of {offline['judged']} candidates ({offline['kept']} kept); replayed, the rule would have saved "
          f"{offline['saved_s']:.0f} s of its {offline['wall_s']:.0f} s: {offline['projected_ratio']}x projected")
    out = Path(args.out) if args.out else RESULTS / f"early_abort_{args.preset}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.node(),
                               "cpus": os.cpu_count(), "args": vars(args), "wall_s": round(wall, 1), "campaigns": stats,
                               "ratio": round(ratio, 3), "abort_rules": rules, "replay": offline, "run_dirs": {k: str(v) for k, v in runs.items()}},
                              indent=1))
    plot(runs, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}; campaigns kept in {work}")


if __name__ == "__main__":
    main()
