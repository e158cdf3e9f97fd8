"""The campaign as its ledger tells it: pure functions of the experiment rows and the meta table.

`loop.py` reads the ledger once per step and asks these questions of the rows; nothing here does
I/O or keeps state, so a resumed controller sees exactly what an uninterrupted one saw.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from autoresearch_rl.agent.protocol import SearchState, Transition
from autoresearch_rl.decision import KeepRule, NoiseConfig, noise_sigma
from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger import ExperimentRow
from autoresearch_rl.loop_config import Incumbent
from autoresearch_rl.oracle import CampaignProgress, OracleConfig
from autoresearch_rl.selfeval.drift import throughput
from autoresearch_rl.target.space import ActionSpace

Rows = Sequence[ExperimentRow]


def incumbent_of(meta: Mapping[str, Any]) -> Incumbent:
    data = meta["incumbent"]
    return Incumbent(int(data["exp_id"]), data["sha"], float(data["val_bpb"]), data["source_hash"])


def transitions(rows: Rows, failure_penalty: float) -> list[Transition]:
    """Decided candidates, oldest first (interrupted ones are not transitions: their re-run is).

    A candidate's value is the mean of its own run and its confirmations'."""
    confirmations: dict[int, list[float]] = {}
    for r in rows:
        if r.role == "confirmation" and r.status.scored and r.val_bpb is not None and r.parent_id is not None:
            confirmations.setdefault(r.parent_id, []).append(r.val_bpb)
    out: list[Transition] = []
    for r in rows:
        if r.role != "candidate" or not r.decided or r.status is Status.INTERRUPTED:
            continue
        p = r.proposal
        scores = [r.val_bpb, *confirmations.get(r.id, [])] if r.val_bpb is not None else []
        out.append(Transition(
            exp_id=r.id, iteration=len(out), operator=p.get("operator", ""), arg=p.get("arg", ""),
            kind=p.get("kind", ""), status=r.status, val_bpb=statistics.fmean(scores) if scores else None,
            reward=r.reward if r.reward is not None else failure_penalty,
            incumbent_val_bpb=float(p.get("incumbent_val_bpb", 0.0)), parent_hash=p.get("parent_hash", ""),
            info=p.get("info", {}), params=p.get("params")))
    return out


def proposals_made(rows: Rows) -> int:
    """Candidates proposed so far, decided or in flight (a re-run of an interrupted one is not a new proposal)."""
    return sum(r.role == "candidate" and r.retry_of is None for r in rows)


def device_hours(rows: Rows) -> float:
    return sum(r.timings.total for r in rows) / 3600.0


def budget_used(oracle: OracleConfig, iterations: int, elapsed_s: float, used_device_hours: float) -> float:
    """The largest fraction spent of any budget the campaign has (iterations, hours, device hours)."""
    fractions = [0.0]
    if oracle.max_iters:
        fractions.append(iterations / oracle.max_iters)
    if oracle.max_hours:
        fractions.append(elapsed_s / 3600 / oracle.max_hours)
    if oracle.max_device_hours:
        fractions.append(used_device_hours / oracle.max_device_hours)
    return min(1.0, max(fractions))


def improvement_iterations(history: Sequence[Transition], margin: float) -> tuple[int, ...]:
    """1-based iterations at which a kept candidate beat its incumbent by more than the noise margin."""
    return tuple(t.iteration + 1 for t in history
                 if t.kept and t.val_bpb is not None and t.incumbent_val_bpb - t.val_bpb > margin)


def worker_losses(rows: Rows, exp_id: int) -> int:
    """How many runs of this candidate (it and the retries before it) ended with a lost worker."""
    return _losses({r.id: r for r in rows}, exp_id)


def _losses(by_id: Mapping[int, ExperimentRow], exp_id: int) -> int:
    losses, row = 0, by_id.get(exp_id)
    while row is not None:
        losses += row.error.startswith("worker lost")
        row = by_id.get(row.retry_of) if row.retry_of is not None else None
    return losses


def next_calibration_index(rows: Rows, seed_of: Callable[[int], int]) -> int:
    """The lowest calibration index whose seed no live run has: an interrupted run's seed is run again."""
    taken = {r.seed for r in rows if r.status is not Status.INTERRUPTED}
    index = 0
    while seed_of(index) in taken:
        index += 1
    return index


def undecided_candidates(rows: Rows) -> list[int]:
    """Candidates that ran but were never decided (the controller stopped in between)."""
    return [r.id for r in rows if r.role == "candidate" and r.reward is None
            and r.status not in (Status.RUNNING, Status.INTERRUPTED, Status.KEPT, Status.DISCARDED)]


def interrupted_candidates(rows: Rows, max_worker_losses: int) -> list[int]:
    """Interrupted candidates not re-run yet, unless their worker died too often (they may be what kills it)."""
    retried = {r.retry_of for r in rows if r.retry_of is not None}
    by_id = {r.id: r for r in rows}
    return [r.id for r in rows if r.role == "candidate" and r.status is Status.INTERRUPTED and r.id not in retried
            and _losses(by_id, r.id) < max_worker_losses]


CALIBRATION_SPEED_TOLERANCE = 0.10  # a calibration run this far off the median throughput trained on a disturbed machine
MAX_CALIBRATION_RUNS_FACTOR = 2  # at most 2x the requested scored runs; then every run counts, disturbed or not


def calibration_runs(rows: Rows, wanted: int) -> tuple[list[ExperimentRow], list[ExperimentRow]]:
    """The scored calibration runs that measure the noise, and those left out because they trained at a speed
    more than 10% off the median of all of them (the machine was busy: under a wall-clock budget a slowed run
    trains fewer steps, and one such run would make sigma, hence the keep margin, many times too large).

    It takes 3 runs to tell which one is off (of 2, either could be), so `--calibration-seeds 2` has no
    guard. Runs without a throughput are kept. Once 2x `wanted` runs are scored every run counts, so a
    machine whose speed really varies still calibrates (and its sigma says so)."""
    scored = [r for r in rows if r.role == "calibration" and r.status.scored]
    speeds = [s for r in scored if (s := throughput(r)) is not None]
    if len(speeds) < 3 or len(scored) >= MAX_CALIBRATION_RUNS_FACTOR * wanted:
        return scored, []
    median = statistics.median(speeds)

    def disturbed(r: ExperimentRow) -> bool:
        s = throughput(r)
        return s is not None and abs(s - median) > CALIBRATION_SPEED_TOLERANCE * median

    return [r for r in scored if not disturbed(r)], [r for r in scored if disturbed(r)]


def calibration_facts(rows: Rows, wanted: int, noise: NoiseConfig, keep: KeepRule) -> dict[str, Any] | None:
    """What calibration establishes once `wanted` undisturbed runs of the base train.py are scored (None before):
    the noise sigma (their spread), the baseline (their mean, also the first incumbent's value), the keep margin."""
    usable, disturbed = calibration_runs(rows, wanted)
    if len(usable) < wanted:
        return None
    scores = [r.val_bpb for r in usable[:wanted] if r.val_bpb is not None]
    sigma = noise_sigma(scores, noise)
    first = usable[0]
    incumbent = Incumbent(first.id, first.commit_sha, statistics.fmean(scores), first.source_hash)
    return dict(base_commit=first.commit_sha, noise_sigma=sigma, calibration_scores=scores,
                baseline_mean=statistics.fmean(scores), incumbent=incumbent.to_json(),
                keep_margin=keep.margin_sigmas * sigma, calibration_disturbed=[r.id for r in disturbed])


def mask_without_running(space: ActionSpace, source: str, incumbent_hash: str,
                         in_flight: Iterable[dict[str, Any]]) -> tuple[bool, ...]:
    """Applicable actions of `source`, less those already running on this incumbent (a duplicate would only
    repeat them), unless that would leave nothing to propose."""
    mask = list(space.mask(source))
    running = []
    for p in in_flight:
        if p.get("parent_hash") == incumbent_hash and p.get("params") is None:
            try:
                running.append(space.index(p["operator"], p["arg"]))
            except ValueError:
                continue
    if any(ok and i not in running for i, ok in enumerate(mask)):
        for i in running:
            mask[i] = False
    return tuple(mask)


def search_state(rows: Rows, meta: Mapping[str, Any], *, incumbent_source: str, base_source: str,
                 space: ActionSpace, mask: tuple[bool, ...], oracle: OracleConfig, failure_penalty: float,
                 elapsed_s: float) -> SearchState:
    """What the proposer sees (s_t): the incumbent, the decided history, the noise and the budget spent."""
    inc = incumbent_of(meta)
    history = tuple(transitions(rows, failure_penalty))
    used = budget_used(oracle, len(history), elapsed_s, device_hours(rows))
    return SearchState(incumbent_source=incumbent_source, incumbent_hash=inc.source_hash,
                       incumbent_val_bpb=inc.val_bpb, base_source=base_source, space=space, mask=mask,
                       history=history, noise_sigma=float(meta["noise_sigma"]), budget_used=used,
                       proposal_index=proposals_made(rows))


def progress(rows: Rows, meta: Mapping[str, Any], *, failure_penalty: float, elapsed_s: float, proposer: Any,
             audit: Any) -> CampaignProgress:
    """What the termination oracle sees; iterations count proposals decided or in flight."""
    history = transitions(rows, failure_penalty)
    return CampaignProgress(iterations=max(len(history), proposals_made(rows)), elapsed_hours=elapsed_s / 3600,
                            device_hours=device_hours(rows),
                            improvement_iterations=improvement_iterations(history, float(meta.get("keep_margin", 0.0))),
                            entropy_ratio=getattr(proposer, "last_entropy_ratio", None),
                            entropy_floor_ratio=getattr(proposer, "entropy_floor_ratio", None), audit=audit)
