"""`arl verify`: the campaign's headline, verified. Baseline and best re-run interleaved on fresh seeds.

The best val_bpb a search reports is selected as the lowest of many noisy measurements (a winner's
curse), and on a wall-clock budget it also carries whatever the machine load was when it ran. So the
headline is re-measured: the baseline train.py and the best one run alternately (baseline, best,
baseline, best, ...), each with seeds never used during the search, under the same conditions. The
verified gain is mean(baseline) - mean(best) with a 95% Welch t interval; an interval that contains
0 is reported as "no verified improvement". Runs are recorded (role `verification`), so a killed
verification resumes and a repeated one reuses them.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass

from autoresearch_rl.campaign import Campaign
from autoresearch_rl.errors import UserError

ROLE = "verification"
ARMS = ("baseline", "best")


@dataclass(frozen=True)
class Verified:
    baseline_mean: float
    best_mean: float
    gain: float  # baseline - best: positive means the best is better (lower val_bpb)
    ci95_low: float
    ci95_high: float
    runs_each: int
    best_sha: str
    seeds: list[int]

    @property
    def significant(self) -> bool:
        return self.ci95_low > 0

    def to_json(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        verdict = "verified improvement" if self.significant else "no verified improvement (the CI includes 0)"
        return (f"verified gain {self.gain:+.4f} val_bpb (95% CI {self.ci95_low:+.4f} .. {self.ci95_high:+.4f}; "
                f"baseline {self.baseline_mean:.4f}, best {self.best_mean:.4f}, {self.runs_each} fresh seeds each): "
                f"{verdict}")


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) and its Welch t interval."""
    from scipy.stats import t

    diff = statistics.fmean(a) - statistics.fmean(b)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(t.ppf(0.5 + level / 2, dof)) * se
    return diff, diff - half, diff + half


def interleave(run: Callable[[str, int], float | None], scores: dict[str, list[float]], attempts: dict[str, int],
               runs_each: int, used: set[int], start: int = 0) -> list[int]:
    """Run the arm with fewer scores (baseline first) on the next fresh seed until each has `runs_each`; fills
    `scores` and `attempts`, returns the seeds of the scored runs. An arm failing 2x `runs_each` runs is an error."""
    from autoresearch_rl.loop_config import derive_seed

    seeds, index = [], start
    while min(len(v) for v in scores.values()) < runs_each:
        arm = min(ARMS, key=lambda a: (len(scores[a]), ARMS.index(a)))  # baseline, best, baseline, best, ...
        if attempts[arm] >= 2 * runs_each:
            raise UserError(f"the {arm} train.py failed {attempts[arm]} verification runs; see results.tsv")
        seed = derive_seed("verify", index)
        while seed in used:
            index += 1
            seed = derive_seed("verify", index)
        used.add(seed)
        index += 1
        value = run(arm, seed)
        attempts[arm] += 1
        if value is not None:
            scores[arm].append(value)
            seeds.append(seed)
    return seeds


def verify(campaign: Campaign, runs_each: int = 3, on_run: Callable[[str, int, float | None], None] | None = None,
           ) -> Verified | None:
    """Interleave fresh-seed runs of baseline and best until each has `runs_each` scores; None if nothing was kept."""
    if runs_each < 2:
        raise UserError("--runs-each must be at least 2 (the interval needs a spread)")
    meta = campaign.ledger.meta()
    base_sha, best_sha = meta.get("base_commit"), (meta.get("incumbent") or {}).get("sha")
    if not base_sha or not best_sha:
        raise UserError(f"campaign {campaign.run_dir} is not calibrated yet: run `arl run` first")
    if best_sha == base_sha:
        return None
    sources = {"baseline": campaign.history.source_at(base_sha), "best": campaign.history.source_at(best_sha)}
    used = set(meta.get("seeds", []))
    scores: dict[str, list[float]] = {arm: [] for arm in ARMS}
    attempts = {arm: 0 for arm in ARMS}
    seeds: list[int] = []
    rows = [r for r in campaign.ledger.experiments() if r.role == ROLE and r.proposal.get("best_sha") == best_sha]
    for r in rows:
        arm = r.proposal.get("arm")
        if arm in scores:
            attempts[arm] += 1
            if r.val_bpb is not None and r.status.scored:
                scores[arm].append(r.val_bpb)
                seeds.append(r.seed)

    def run(arm: str, seed: int) -> float | None:
        _, record = campaign.run(sources[arm], role=ROLE, description=f"verification: {arm}", seed=seed,
                                 proposal={"arm": arm, "best_sha": best_sha})
        value = record.val_bpb if record.status.scored else None
        if on_run is not None:
            on_run(arm, seed, value)
        return value

    seeds += interleave(run, scores, attempts, runs_each, used, start=len(campaign.ledger.experiments()))
    gain, low, high = welch_interval(scores["baseline"], scores["best"])
    result = Verified(statistics.fmean(scores["baseline"]), statistics.fmean(scores["best"]), gain, low, high,
                      runs_each, best_sha, sorted(seeds))
    campaign.ledger.set_meta(verified=result.to_json())
    return result
