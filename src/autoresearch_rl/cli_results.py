"""`arl status`, `arl report`, `arl verify`: the commands that read a campaign's results and check its headline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autoresearch_rl.campaign import Campaign
from autoresearch_rl.cli_common import _cache_dir, console

def cmd_status(args: argparse.Namespace) -> int:
    from autoresearch_rl.campaign import campaign_summary
    from autoresearch_rl.ledger import Ledger

    with Ledger.open(Path(args.run_dir), create=False) as ledger:
        summary = campaign_summary(Path(args.run_dir), ledger.meta(), ledger)
    if args.json:
        print(json.dumps(summary))
        return 0
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items())) or "none"
    print(f"campaign {summary['run_dir']} | preset {summary['preset']} | env {summary['env_hash']}")
    print(f"experiments: {summary['experiments']} ({counts})")
    print(f"baseline val_bpb: {summary['baseline_val_bpb']}")
    print(f"best val_bpb: {summary['best_val_bpb']} (experiment {summary['best_experiment']})")
    if summary["noise_sigma"] is not None:
        print(f"noise sigma: {summary['noise_sigma']:.5f} (keep margin {summary['keep_margin']:.5f}) | agent "
              f"{summary['agent']} | updates {summary['agent_updates']}")
        print(f"iterations: {summary['iterations']} (kept {summary['kept']}) | {summary['elapsed_hours']:.2f} h elapsed, "
              f"{summary['device_hours']:.2f} device-hours")
    if summary["experiments_per_hour"] is not None:
        print(f"throughput: {summary['experiments_per_hour']:.1f} experiments/hour")
    if summary["early_abort"] is not None:
        from autoresearch_rl.selfeval.accounting import AbortAccount

        a = summary["early_abort"]
        print(AbortAccount(a["aborted"], a["shadow_runs"], a["shadow_would_abort"], a["false_aborts"],
                           a["false_abort_upper"], a["saved_hours"]).line())
    if summary["audit"] is not None:
        from autoresearch_rl.selfeval.audit import AuditSummary

        print(AuditSummary(**summary["audit"]).line())
    if summary["drift"] is not None:
        from autoresearch_rl.selfeval.drift import DriftAccount

        d = summary["drift"]
        print(DriftAccount(d["since"], d["tolerance"], tuple(d["events"])).line())
    for w in summary["workers"]:
        print(f"  worker {w['worker']}: {w['experiments']} experiments, busy {100 * w['utilisation']:.0f}% | {w['devices']}")
    for r in summary["running"]:
        print(f"running: experiment {r['id']} ({r['role']}): {r['description']}")
    if summary["verified"] is not None:
        from autoresearch_rl.verify import Verified

        print(Verified(**summary["verified"], best_sha="", seeds=[]).line())
    print(f"stopped: {summary['stop_reason']}" if summary["stop_reason"] else "stop reason: none (running or resumable)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from autoresearch_rl.report import write_report

    report = write_report(Path(args.run_dir))
    table = Table(title="operators by mean reward (in noise sigmas)", title_justify="left")
    for column in ("operator", "tries", "kept", "failed", "mean reward", "best gain"):
        table.add_column(column)
    for s in report.operators:
        table.add_row(s.operator, str(s.tries), str(s.kept), str(s.failed), f"{s.mean_reward:+.2f}",
                      "" if s.best_gain is None else f"{s.best_gain:+.4f}")
    Console(highlight=False, width=None if sys.stdout.isatty() else 140).print(table)
    meta_verified = report.verified
    if meta_verified is not None:
        print(meta_verified.line())
    for h in report.heldout:
        val = "-" if h.val_bpb is None else f"{h.val_bpb:.4f}"
        test = "-" if h.test_bpb is None else f"{h.test_bpb:.4f}"
        print(f"{h.label} (experiment {h.exp_id}): val_bpb {val} | held-out test_bpb {test}" + (f" ({h.note})" if h.note else ""))
    for label, path in (("plot", report.progress_png), ("table", report.results_tsv), ("best diff", report.best_diff),
                        ("workers", Path(args.run_dir) / "workers.md"), ("loss curves", Path(args.run_dir) / "curves.png"),
                        ("self-evaluation", Path(args.run_dir) / "selfeval.md"),
                        ("operators", report.operators_md)):
        print(f"{label}: {path}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-run baseline and best interleaved on fresh seeds; the headline is the verified gain with its 95% CI."""
    from autoresearch_rl.verify import verify

    with Campaign.open(Path(args.run_dir), None, _cache_dir(args), create=False) as campaign:
        if n := campaign.recover():
            console.print(f"marked {n} experiment(s) left running by a stopped controller as INTERRUPTED")
        searched = (campaign.ledger.meta().get("incumbent") or {}).get("val_bpb")

        def shown(arm: str, seed: int, value: float | None) -> None:
            console.print(f"  {arm} (seed {seed}): " + ("failed" if value is None else f"val_bpb {value:.4f}"))

        console.print(f"verifying {campaign.run_dir}: baseline and best interleaved, {args.runs_each} fresh seeds each")
        result = verify(campaign, runs_each=args.runs_each, on_run=shown)
    if result is None:
        print("no kept edit: the best is the baseline, nothing to verify (no verified improvement)")
        return 0
    if searched is not None:
        print(f"search-time best val_bpb {searched:.4f} (the incumbent's own runs)")
    print(result.line())
    return 0
