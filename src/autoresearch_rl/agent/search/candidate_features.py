"""Task-agnostic, scale-free features of the candidates a scoring policy chooses among.

Candidates: the incumbent's one-knob neighbours, and a re-measurement of the incumbent. Every number
is in units of the calibrated noise sigma, a count, or a fraction, and no knob is named: multiplying
the objective by 10 or shifting it changes no feature, so a policy trained on one family of tasks
can act on another.

Per candidate (CANDIDATE_FEATURES):
    untried        1 if the configuration was never measured
    measured       log1p(times measured) / 3
    measured_gain  (incumbent - mean of its measurements) / sigma, clipped to +-5, / 5 (0 if unmeasured)
    predicted_gain an additive surrogate's gain (per knob-value main effects, shrunk), / sigma, clipped, / 5
    knob_tries     edits of this knob / (edits + 5)
    knob_best      best reward of an edit of this knob / 5 (0 if none)
    crash_rate     share of runs with this knob at this value that crashed
    remeasure      1 for the re-measurement of the incumbent
    move           |index step| / (choices - 1): how far along the knob's ordered choices it moves
    bias           1
Per campaign (CAMPAIGN_FEATURES): budget used, iterations since the last keep (squashed), crash
fraction, log1p(incumbent measurements) / 3, the best challenger's measured gain / 5.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from autoresearch_rl.core.space import Config, DiscreteSpace
from autoresearch_rl.core.state import CampaignState

CANDIDATE_FEATURES = 10
CAMPAIGN_FEATURES = 5
CLIP = 5.0


def _clip(x: float) -> float:
    return max(-CLIP, min(CLIP, x)) / CLIP


def candidates(space: DiscreteSpace, state: CampaignState) -> list[tuple[Config, str]]:
    return [(c, "edit") for c in space.neighbours(state.incumbent)] + [(state.incumbent, "remeasure")]


def featurise(space: DiscreteSpace, state: CampaignState, horizon: int) -> tuple[list[tuple[Config, str]], np.ndarray, np.ndarray]:
    """(candidates, (n, CANDIDATE_FEATURES), (CAMPAIGN_FEATURES,))."""
    sigma = state.sigma or 0.0
    scale = sigma if sigma > 0 else 1.0
    inc_value = state.incumbent_value or 0.0
    sums: dict[Config, list[float]] = defaultdict(list)
    kv_values: dict[tuple[int, int], list[float]] = defaultdict(list)
    kv_runs: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    scored = []
    for config, value in state.observations:
        for k, v in enumerate(config):
            kv_runs[(k, v)][0] += 1
            kv_runs[(k, v)][1] += value is None
        if value is not None:
            sums[config].append(value)
            scored.append(value)
            for k, v in enumerate(config):
                kv_values[(k, v)].append(value)
    grand = float(np.mean(scored)) if scored else inc_value

    def effect(k: int, v: int) -> float:
        vals = kv_values.get((k, v))
        if not vals:
            return 0.0
        return (sum(vals) / len(vals) - grand) * len(vals) / (len(vals) + 2.0)

    knob_tries = [0] * len(space)
    knob_best = [-math.inf] * len(space)
    for e in state.edits:
        if e.parent is None or e.reward is None:
            continue
        k = space.changed_knob(state.experiments[e.parent].config, e.config)
        if k is not None:
            knob_tries[k] += 1
            knob_best[k] = max(knob_best[k], e.reward)
    cands = candidates(space, state)
    rows = np.zeros((len(cands), CANDIDATE_FEATURES), dtype=np.float32)
    inc = state.incumbent
    for i, (config, kind) in enumerate(cands):
        runs = sums.get(config, [])
        n = state.measurement_counts.get(config, 0)
        if kind == "remeasure":
            rows[i] = (0.0, math.log1p(n) / 3, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0)
            continue
        k = space.changed_knob(inc, config)
        assert k is not None
        a, b = inc[k], config[k]
        predicted = (effect(k, a) - effect(k, b)) / scale
        tries, crashes = kv_runs.get((k, b), (0, 0))
        rows[i] = (float(n == 0), math.log1p(n) / 3, _clip((inc_value - sum(runs) / len(runs)) / scale) if runs else 0.0,
                   _clip(predicted), knob_tries[k] / (knob_tries[k] + 5.0),
                   _clip(knob_best[k]) if knob_tries[k] else 0.0, crashes / tries if tries else 0.0, 0.0,
                   abs(b - a) / max(1, space.sizes[k] - 1), 1.0)
    best_challenger = 0.0
    for config, runs in sums.items():
        if config != inc and runs:
            best_challenger = max(best_challenger, _clip((inc_value - sum(runs) / len(runs)) / scale))
    since = state.iterations_since_improvement
    campaign = np.array([min(1.0, state.iterations / max(1, horizon)), since / (since + 10.0), state.crash_fraction,
                         math.log1p(len(state.incumbent_values)) / 3, best_challenger], dtype=np.float32)
    return cands, rows, campaign
