"""The live view of `arl run`: current experiment and its training progress, elapsed/budget, best val_bpb, last rows.

On a terminal it is a `rich` Live panel refreshed twice a second; elsewhere (CI logs, pipes) it prints
one line per finished experiment, so logs stay readable.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from autoresearch_rl.ledger import ExperimentRow, Ledger
from autoresearch_rl.logparse import parse_log

LAST_ROWS = 8


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


class LiveDisplay:
    """Implements the loop's events; use as a context manager around the loop's `run()`."""

    def __init__(self, console: Console, run_dir: Path, ledger: Ledger, agent: str, budget_s: float,
                 max_iters: int | None) -> None:
        self.console = console
        self.run_dir = run_dir
        self.ledger = ledger
        self.agent = agent
        self.budget_s = budget_s
        self.max_iters = max_iters
        self.rows: deque[tuple[ExperimentRow, str]] = deque(maxlen=LAST_ROWS)
        self.current: dict[int, tuple[str, str, float]] = {}  # running experiments: id -> role, description, started
        self.started = time.time()
        self.interactive = console.is_terminal
        self._live: Live | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LiveDisplay:
        if self.interactive:
            self._live = Live(self._render(), console=self.console, refresh_per_second=2, transient=False)
            self._live.__enter__()
            self._thread = threading.Thread(target=self._refresh, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)

    # ---- the events of a run --------------------------------------------------------------------------

    def experiment_started(self, exp_id: int, role: str, description: str) -> None:
        self.current[exp_id] = (role, description, time.time())
        if not self.interactive:
            self.console.print(f"[{exp_id:>4}] {role}: {description} ...")

    def experiment_finished(self, row: ExperimentRow, verdict: str) -> None:
        self.rows.append((row, verdict))
        self.current.pop(row.id, None)
        if not self.interactive:
            score = _fmt(row.val_bpb)
            reward = "" if row.reward is None else f" reward {row.reward:+.2f}"
            error = f" ({row.error[:100]})" if row.error else ""
            self.console.print(f"[{row.id:>4}] {row.role}: {verdict} val_bpb {score}{reward} in {row.timings.total:.0f} s"
                               f"{error} | best {_fmt(self._best())}")

    # ---- rendering ---------------------------------------------------------------------------

    def _best(self) -> float | None:
        incumbent = self.ledger.meta().get("incumbent")
        return None if not incumbent else float(incumbent["val_bpb"])

    def _refresh(self) -> None:
        while not self._stop.wait(0.5):
            if self._live is not None:
                self._live.update(self._render())

    def _training_line(self, exp_id: int) -> str:
        workspace = self.ledger.get(exp_id).workspace  # where the run trains (the core loop names it itself)
        log = Path(workspace or self.run_dir / "experiments" / f"{exp_id:05d}") / "train.log"
        if not log.is_file():
            return "validating / starting"
        progress = parse_log(log).progress
        if not progress:
            return "starting"
        p = progress[-1]
        return f"step {p.step} | {p.elapsed:.0f}/{self.budget_s:.0f} s | train loss {p.loss:.4f}"

    def _render(self) -> Group:
        meta = self.ledger.meta()
        iterations = sum(1 for row, _ in self.rows if row.role == "candidate")
        header = Text.assemble(
            ("autoresearch-rl ", "bold"), f"agent {self.agent} | elapsed {time.time() - self.started:.0f} s | ",
            f"budget {self.budget_s:.0f} s/experiment | best val_bpb {_fmt(self._best())} | ",
            f"baseline {_fmt(meta.get('baseline_mean'))} | sigma {_fmt(meta.get('noise_sigma'))}",
            f" | max iterations {self.max_iters}" if self.max_iters else "",
        )
        parts: list = [header]
        for exp_id, (role, description, started) in sorted(self.current.items()):
            parts.append(Text(f"now: [{exp_id}] {role}: {description} ({time.time() - started:.0f} s) - "
                              f"{self._training_line(exp_id)}"))
        table = Table(title=f"last experiments ({iterations} candidate(s) this session)", title_justify="left")
        for column in ("id", "role", "verdict", "val_bpb", "reward", "s", "description"):
            table.add_column(column)
        for row, verdict in self.rows:
            table.add_row(str(row.id), row.role, verdict, _fmt(row.val_bpb),
                          "" if row.reward is None else f"{row.reward:+.2f}", f"{row.timings.total:.0f}",
                          row.description[:70])
        parts.append(table)
        return Group(*parts)
