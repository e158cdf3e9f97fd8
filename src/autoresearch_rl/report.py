"""What a campaign found, for people: progress.png, results.tsv, best.diff and a table of operators by reward.

    report = write_report(run_dir)      # also `arl report --run-dir D`

It also scores the baseline's and the best model on the held-out test split (which no reward ever
saw), so a val/test gap that opens during a campaign (overfitting to val) is visible.

progress.png shows every experiment after calibration as a dot (val_bpb against iteration; kept
ones highlighted; failures as crosses on the top edge), the incumbent as a step line, and the
calibration mean with its +-margin band, so a win smaller than the noise is visibly one.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on the machines this runs on
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from autoresearch_rl.experiment import Status  # noqa: E402
from autoresearch_rl.ledger import CandidateHistory, ExperimentRow, Ledger, write_results_tsv  # noqa: E402
from autoresearch_rl.target.edits import unified_diff  # noqa: E402
from autoresearch_rl.selfeval.accounting import abort_account, prediction_error_lines  # noqa: E402
from autoresearch_rl.selfeval.audit import audit  # noqa: E402
from autoresearch_rl.usage import SINGLE_WORKER, experiments_per_hour, worker_usage  # noqa: E402
from autoresearch_rl.files import write_atomic  # noqa: E402


@dataclass(frozen=True)
class OperatorStats:
    operator: str
    tries: int
    kept: int
    failed: int
    mean_reward: float
    best_gain: float | None  # largest val_bpb improvement over its incumbent, when any scored


@dataclass(frozen=True)
class HeldOut:
    """The baseline's and the best model's scores on the validation split (rewards) and the held-out test split."""

    label: str  # "baseline" or "best"
    exp_id: int
    val_bpb: float | None
    test_bpb: float | None
    note: str = ""


@dataclass(frozen=True)
class Report:
    progress_png: Path
    results_tsv: Path
    best_diff: Path
    operators_md: Path
    operators: list[OperatorStats]
    heldout: list[HeldOut]
    verified: Any = None  # verify.Verified of the current best, when `arl verify` has run


def operator_table(rows: list[ExperimentRow]) -> list[OperatorStats]:
    """Decided candidates grouped by operator, best mean reward first."""
    groups: dict[str, list[ExperimentRow]] = defaultdict(list)
    for r in rows:
        if r.role == "candidate" and r.reward is not None:
            groups[r.proposal.get("operator", "?")].append(r)
    stats = []
    for name, rs in groups.items():
        gains = [r.proposal.get("incumbent_val_bpb", math.nan) - r.val_bpb for r in rs if r.val_bpb is not None]
        stats.append(OperatorStats(operator=name, tries=len(rs), kept=sum(r.status is Status.KEPT for r in rs),
                                   failed=sum(r.status.failed for r in rs),
                                   mean_reward=statistics.fmean(r.reward or 0.0 for r in rs),
                                   best_gain=max(gains) if gains else None))
    return sorted(stats, key=lambda s: (-s.mean_reward, s.operator))


def _operators_markdown(stats: list[OperatorStats]) -> str:
    lines = ["| operator | tries | kept | failed | mean reward (sigmas) | best gain (bpb) |", "|---|---|---|---|---|---|"]
    for s in stats:
        gain = "" if s.best_gain is None else f"{s.best_gain:+.4f}"
        lines.append(f"| {s.operator} | {s.tries} | {s.kept} | {s.failed} | {s.mean_reward:+.2f} | {gain} |")
    return "\n".join(lines) + "\n"


def workers_markdown(rows: list[ExperimentRow], elapsed_s: float) -> str:
    """Throughput, each worker's busy fraction, and the device every experiment ran on (shared ones marked)."""
    per_hour = experiments_per_hour(rows, elapsed_s)
    lines = [f"experiments per hour: {'-' if per_hour is None else f'{per_hour:.1f}'} "
             f"(over {elapsed_s / 3600:.2f} h of wall clock)", "",
             "| worker | experiments | busy hours | utilisation | devices |", "|---|---|---|---|---|"]
    for w in worker_usage(rows, elapsed_s):
        lines.append(f"| {w.worker} | {w.experiments} | {w.busy_hours:.3f} | {100 * w.utilisation:.0f}% | {w.devices} |")
    lines += ["", "| id | role | status | worker | device | seconds |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r.finished_at is None:
            continue
        lines.append(f"| {r.id} | {r.role} | {r.status.value} | {r.summary.get('worker', SINGLE_WORKER)} | "
                     f"{r.summary.get('device', '-')} | {r.finished_at - r.created_at:.0f} |")
    return "\n".join(lines) + "\n"


def plot_curves(rows: list[ExperimentRow], meta: dict[str, Any], path: Path) -> None:
    """Training-loss curves of kept, discarded and aborted candidates against the incumbent's; saved time in the title."""
    styles = {Status.KEPT: ("#1f9d55", 1.2, "kept"), Status.DISCARDED: ("#9aa5b1", 0.6, "discarded"),
              Status.ABORTED: ("#de751f", 0.9, "aborted early")}
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=120)
    labelled: set[str] = set()
    finals = []
    for r in rows:
        style = styles.get(r.status) if r.role == "candidate" else None
        curve = r.summary.get("curve")
        if style is None or not curve:
            continue
        color, width, label = style
        t, loss = zip(*((p[0], p[1]) for p in curve))  # points may carry tokens as a third column
        ax.plot(t, loss, color=color, linewidth=width, alpha=0.8, label=None if label in labelled else label)
        labelled.add(label)
        finals.append(loss[-1])
    incumbent = (meta.get("incumbent") or {}).get("exp_id")
    by_id = {r.id: r for r in rows}
    if incumbent in by_id and by_id[incumbent].summary.get("curve"):
        t, loss = zip(*((p[0], p[1]) for p in by_id[incumbent].summary["curve"]))
        ax.plot(t, loss, color="black", linewidth=2.2, label=f"incumbent (experiment {incumbent})")
        finals.append(loss[-1])
    if finals:  # diverging runs would flatten the rest
        ax.set_ylim(min(finals) * 0.95, max(finals) * 1.6)
    account = abort_account(rows)
    ax.set_title(f"training loss: {account.aborted} aborted early, {account.saved_hours * 60:.1f} device-minutes saved; "
                 f"false aborts {account.false_aborts}/{account.shadow_would_abort} shadow runs", fontsize=10)
    ax.set_xlabel("training seconds")
    ax.set_ylabel("train loss (nats/token)")
    ax.grid(alpha=0.3)
    if labelled or finals:
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def selfeval_markdown(rows: list[ExperimentRow], meta: dict[str, Any]) -> str:
    """The agent's self-audit against random proposals, and what early abort cost and saved."""
    lines = ["# self-evaluation", "", abort_account(rows).line()]
    if any(r.proposal.get("audit") for r in rows if r.role == "candidate"):
        lines.append(audit(rows, float(meta.get("keep_margin") or 0.0)).line())
    else:
        lines.append("audit: none (no random audit proposals in this campaign)")
    lines += prediction_error_lines(rows)
    return "\n".join(lines) + "\n"


def plot_progress(rows: list[ExperimentRow], meta: dict[str, Any], path: Path) -> None:
    """Every candidate as a dot against its iteration, kept ones highlighted, the incumbent as a step line."""
    candidates = [r for r in rows if r.role == "candidate" and r.reward is not None]
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=120)
    baseline = meta.get("baseline_mean")
    margin = meta.get("keep_margin", 0.0)
    xs = list(range(1, len(candidates) + 1))
    scored = [(x, r.val_bpb) for x, r in zip(xs, candidates) if r.val_bpb is not None]
    values = [v for _, v in scored] + ([baseline] if baseline is not None else [])
    low, top = (min(values), max(values)) if values else (0.0, 1.0)
    sigma = meta.get("noise_sigma")
    if baseline is not None and sigma:
        top = min(top, baseline + 15 * sigma)  # disasters (lr x100) would flatten everything else
    pad = max(1e-3, 0.08 * (top - low))
    ceiling = top + 2 * pad  # where off-scale points and failures are drawn
    kept_ids = {r.id for r in candidates if r.status is Status.KEPT}
    rows_at = dict(zip(xs, candidates))
    discarded = [(x, v) for x, v in scored if rows_at[x].id not in kept_ids and v <= top + pad]
    off_scale = [x for x, v in scored if v > top + pad]
    kept = [(x, v) for x, v in scored if rows_at[x].id in kept_ids]
    failures = [x for x, r in zip(xs, candidates) if r.val_bpb is None and r.status is not Status.ABORTED]
    aborted = [(x, min(float(r.summary.get("predicted_val_bpb", ceiling)), ceiling)) for x, r in zip(xs, candidates)
               if r.status is Status.ABORTED]
    if aborted:
        ax.scatter(*zip(*aborted), marker="v", s=26, color="#de751f", label="aborted early (at its predicted val_bpb)",
                   zorder=2)
    if discarded:
        ax.scatter(*zip(*discarded), s=18, color="#9aa5b1", label="discarded", zorder=2)
    if off_scale:
        ax.scatter(off_scale, [ceiling] * len(off_scale), marker="^", s=30, color="#9aa5b1",
                   label="discarded, off scale", zorder=2)
    if failures:
        ax.scatter(failures, [ceiling] * len(failures), marker="x", color="#cc1f1a", label="failed (not scored)", zorder=3)
    if kept:
        ax.scatter(*zip(*kept), s=60, color="#1f9d55", edgecolor="black", label="kept", zorder=4)
    ax.set_ylim(low - pad, ceiling + pad)
    if baseline is not None:
        steps_x, steps_y, best = [0], [baseline], baseline
        for x, r in zip(xs, candidates):
            if r.status is Status.KEPT and r.val_bpb is not None:
                best = min(best, _incumbent_score(r, rows))  # with parallel workers, ids are not decision order
            steps_x.append(x)
            steps_y.append(best)
        ax.step(steps_x, steps_y, where="post", color="#1f9d55", linewidth=2, label="incumbent (kept best)", zorder=3)
        ax.axhline(baseline, color="#3d4852", linestyle="--", linewidth=1, label=f"baseline mean {baseline:.4f}")
        if margin:
            ax.axhspan(baseline - margin, baseline + margin, color="#3d4852", alpha=0.08,
                       label=f"keep margin +-{margin:.4f} (sigma {meta.get('noise_sigma', 0):.4f})")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("iteration (experiments after calibration)")
    ax.set_ylabel("val_bpb (lower is better)")
    agent = meta.get("agent", "?")
    ax.set_title(f"{meta.get('preset', '?')} campaign, agent {agent}: {len(candidates)} iterations, "
                 f"{len(kept)} kept")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def _incumbent_score(row: ExperimentRow, rows: list[ExperimentRow]) -> float:
    """A kept candidate's score as the loop uses it: the mean of its run and its confirmation runs."""
    runs = [row.val_bpb] + [r.val_bpb for r in rows if r.role == "confirmation" and r.parent_id == row.id
                            and r.status.scored and r.val_bpb is not None]
    return statistics.fmean(v for v in runs if v is not None)


def _test_bpb(run_dir: Path, row: ExperimentRow, meta: dict[str, Any]) -> tuple[float | None, str]:
    """Score one kept model on the test split (never seen by rewards), once; cached in test_eval.json."""
    workspace = Path(row.workspace) if row.workspace else run_dir / "experiments" / f"{row.id:05d}"
    out = workspace / "test_eval.json"
    if not out.is_file():
        if not (workspace / "checkpoint").is_dir():
            return None, "checkpoint not kept"
        argv = [sys.executable, "-m", "autoresearch_rl.env.evaluator", "--checkpoint", str(workspace / "checkpoint"),
                "--preset", str(meta.get("preset")), "--split", "test", "--out", str(out)]
        if meta.get("cache_dir"):
            argv += ["--cache-dir", str(meta["cache_dir"])]
        if (run_dir / "frozen_manifest.json").is_file():
            argv += ["--manifest", str(run_dir / "frozen_manifest.json")]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1800)  # no --train-py: never imports candidate code
        if not out.is_file():
            return None, f"evaluator failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:200]}"
    verdict = json.loads(out.read_text())
    return (verdict.get("val_bpb") if verdict.get("status") == "OK" else None), verdict.get("error", "")


def heldout_scores(run_dir: Path, rows: list[ExperimentRow], meta: dict[str, Any]) -> list[HeldOut]:
    """val vs test for the baseline and the best model: a gap that grows with the campaign is overfitting to val."""
    incumbent = meta.get("incumbent")
    base_sha = meta.get("base_commit")
    if not incumbent or not base_sha:
        return []
    base = next((r for r in rows if r.commit_sha == base_sha), None)
    best = next((r for r in rows if r.id == int(incumbent["exp_id"])), None)
    out = []
    for label, row, val in (("baseline", base, meta.get("baseline_mean")), ("best", best, incumbent["val_bpb"])):
        if row is None:
            continue
        test, note = _test_bpb(run_dir, row, meta)
        out.append(HeldOut(label, row.id, val, test, note))
    return out


def write_report(run_dir: Path, heldout: bool = True) -> Report:
    """Write the four files into the run directory; readable while a campaign runs."""
    run_dir = Path(run_dir)
    with Ledger.open(run_dir, create=False) as ledger:
        rows = ledger.experiments()
        meta = ledger.meta()
        write_results_tsv(ledger, run_dir / "results.tsv")
    history = CandidateHistory(run_dir)
    verified = None
    if (meta.get("verified") or {}).get("best_sha") and meta["verified"]["best_sha"] == (meta.get("incumbent") or {}).get("sha"):
        from autoresearch_rl.verify import Verified

        verified = Verified(**meta["verified"])
    base_sha = meta.get("base_commit")
    incumbent_sha = (meta.get("incumbent") or {}).get("sha")
    if base_sha and incumbent_sha:
        diff = unified_diff(history.source_at(base_sha), history.source_at(incumbent_sha))
        header = f"# baseline {base_sha[:7]} -> best {incumbent_sha[:7]} (val_bpb {meta['incumbent']['val_bpb']:.6f})\n"
        if verified is not None:
            header += f"# {verified.line()}\n"
        elif incumbent_sha != base_sha:
            header += "# not verified yet: `arl verify` re-runs baseline and best on fresh seeds\n"
        if any(r.role == "remeasure" for r in rows):
            from autoresearch_rl.core.drift import DriftMonitor
            from autoresearch_rl.selfeval.drift import drift_account

            header += f"# {drift_account(rows, DriftMonitor()).line()}\n"
        text = header + (diff or "# no kept change yet: the best is the baseline\n")
    else:
        text = "# not calibrated yet: no baseline to compare with\n"
    write_atomic(run_dir / "best.diff", text)
    stats = operator_table(rows)
    write_atomic(run_dir / "operators.md", _operators_markdown(stats))
    write_atomic(run_dir / "workers.md", workers_markdown(rows, float(meta.get("elapsed_s", 0.0))))
    write_atomic(run_dir / "selfeval.md", selfeval_markdown(rows, meta))
    plot_curves(rows, meta, run_dir / "curves.png")
    plot_progress(rows, meta, run_dir / "progress.png")
    scores = heldout_scores(run_dir, rows, meta) if heldout else []
    if scores:
        write_atomic(run_dir / "heldout.json", json.dumps([s.__dict__ for s in scores], indent=1))
    return Report(progress_png=run_dir / "progress.png", results_tsv=run_dir / "results.tsv",
                  best_diff=run_dir / "best.diff", operators_md=run_dir / "operators.md", operators=stats,
                  heldout=scores, verified=verified)
