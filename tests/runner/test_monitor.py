"""run_with_deadline's monitor: a reason stops the run like the deadline; the curve monitor follows a live log."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from autoresearch_rl.runner.process import run_with_deadline
from autoresearch_rl.selfeval.abort import AbortSpec
from autoresearch_rl.selfeval.monitor import CurveMonitor

# prints runtime-style progress lines for a 2 s budget; the loss falls, or rises when argv[1] == "diverge"
FAKE_TRAIN = """
import sys, time
budget, start, step = 2.0, time.perf_counter(), 0
while (e := time.perf_counter() - start) < budget:
    loss = 8.3 if step == 0 else (8.3 + 3 * e if sys.argv[1] == "diverge" else 2.0 * (e / budget) ** -0.4 + 3.0)
    print(f"step {step:05d} | elapsed {e:.2f}s | progress {100 * e / budget:.1f}% | loss {loss:.6f} | tokens {step} | tok/s 1",
          flush=True)
    step += 1
    time.sleep(0.05)
print("---")
print("final_train_loss: 5.0")
"""


def _run(tmp_path: Path, argv: list[str], **kwargs: object):  # type: ignore[no-untyped-def]
    return run_with_deadline(argv, cwd=tmp_path, env=dict(os.environ), log_path=tmp_path / "log", deadline_s=30.0,
                             kill_grace_s=0.5, **kwargs)  # type: ignore[arg-type]


def _spec(shadow: bool = False) -> AbortSpec:
    curve = tuple((e, 8.3 if i == 0 else 2.0 * (e / 2.0) ** -0.4 + 3.0) for i, e in enumerate([0.01] + [0.05 * k for k in range(1, 41)]))
    return AbortSpec(incumbent_curve=curve, incumbent_final_loss=5.0, incumbent_val_bpb=1.8, margin=0.016, budget_s=2.0,
                     shadow=shadow)


def test_a_monitor_reason_stops_the_run_like_the_deadline(tmp_path: Path) -> None:
    calls = []

    def monitor() -> str | None:
        calls.append(time.perf_counter())
        return "doomed" if len(calls) >= 3 else None

    started = time.perf_counter()
    outcome = _run(tmp_path, [sys.executable, "-c", "import time; time.sleep(30)"], monitor=monitor, monitor_every_s=0.1)
    assert outcome.aborted == "doomed" and outcome.returncode is None and not outcome.timed_out
    assert outcome.signal == signal.SIGTERM
    assert time.perf_counter() - started < 5.0 and outcome.wall_seconds < 5.0


def test_a_silent_monitor_is_called_at_most_every_monitor_every_s(tmp_path: Path) -> None:
    calls: list[float] = []
    outcome = _run(tmp_path, [sys.executable, "-c", "import time; time.sleep(1.5)"],
                   monitor=lambda: calls.append(time.perf_counter()), monitor_every_s=0.3)
    assert outcome.returncode == 0 and outcome.aborted == ""
    assert 2 <= len(calls) <= 1.5 / 0.3 + 2
    assert min(b - a for a, b in zip(calls, calls[1:])) >= 0.3 - 1e-3


def test_the_curve_monitor_stops_a_diverging_run_after_the_warmup(tmp_path: Path) -> None:
    monitor = CurveMonitor(_spec(), tmp_path / "log")
    outcome = _run(tmp_path, [sys.executable, "-c", FAKE_TRAIN, "diverge"], monitor=monitor, monitor_every_s=0.1)
    assert outcome.aborted.startswith("diverged") and outcome.returncode is None
    assert monitor.fired is not None and monitor.spec.warmup_fraction <= monitor.fired.fraction < 0.6
    summary = monitor.summary()
    assert summary["aborted_at_fraction"] == round(monitor.fired.fraction, 4)
    assert summary["abort_reason"] == outcome.aborted and summary["predicted_val_bpb"] > 1.8


def test_a_shadow_monitor_never_stops_the_run(tmp_path: Path) -> None:
    monitor = CurveMonitor(_spec(shadow=True), tmp_path / "log")
    outcome = _run(tmp_path, [sys.executable, "-c", FAKE_TRAIN, "diverge"], monitor=monitor, monitor_every_s=0.1)
    assert outcome.returncode == 0 and outcome.aborted == ""
    assert "final_train_loss" in (tmp_path / "log").read_text()
    summary = monitor.summary()
    assert monitor.spec.warmup_fraction <= summary["would_abort_at_fraction"] < 0.6
    assert summary["would_abort_predicted_val_bpb"] > 1.8
    assert "aborted_at_fraction" not in summary


def test_a_run_like_the_incumbent_is_checked_but_not_stopped(tmp_path: Path) -> None:
    monitor = CurveMonitor(_spec(), tmp_path / "log")
    outcome = _run(tmp_path, [sys.executable, "-c", FAKE_TRAIN, "follow"], monitor=monitor, monitor_every_s=0.1)
    assert outcome.returncode == 0 and outcome.aborted == ""
    assert monitor.fired is None and monitor.checks >= 5
    summary = monitor.summary()  # no verdict, only what each check foresaw (the measured rule learns from it)
    assert list(summary) == ["abort_checks"] and len(summary["abort_checks"]) == monitor.checks
    assert all(abs(predicted - 1.8) < 0.1 for _, predicted, _ in summary["abort_checks"])
