"""Task-agnostic, scale-free features of the candidates a scoring policy chooses among.

Candidates: the incumbent's one-knob neighbours, a seeded sample of larger moves (two-knob edits and
fresh random configurations: a way out of a neighbourhood that no longer clears the keep margin),
draws from TPE's model of where the good configurations are, a re-measurement of the incumbent, and
(when one exists) another run of the best challenger (the measured configuration whose mean beats the
incumbent's most): noise-aware search may buy evidence instead of trying a new edit. Every number
is a count, a fraction, a probability, or a value in units of the calibrated noise sigma, and no knob
is named: multiplying the objective by 10 or shifting it changes no feature, so a policy trained on
one family of tasks acts the same way on another.

Per candidate (CANDIDATE_FEATURES, in this order):
    untried         1 if the configuration was never measured
    measured        log1p(times measured) / 3
    measured_gain   (incumbent mean - its mean) / sigma, clipped to +-5, / 5 (0 if unmeasured)
    predicted_gain  surrogate: (incumbent - candidate) posterior means, sigma units, clipped, / 5
    predicted_sd    surrogate: posterior sd of the candidate, sigma units, clipped, / 5
    p_clear         P(one run of it clears the keep margin), under the surrogate
    ei              expected improvement over the incumbent (sigma units), clipped, / 5
    knob_tries      edits of this knob / (edits + 5)
    knob_best       best reward of an edit of this knob / 5 (0 if none)
    crash_rate      share of runs with this knob at this value that crashed
    remeasure       1 for the re-measurement of the incumbent
    challenger      1 for another run of the best challenger
    move            |index step| / (choices - 1) along the knob's ordered choices (one-knob edits)
    distance        knobs changed / knobs
    bias            1
    tpe_rank        rank of TPE's density ratio l(x)/g(x) among the candidates, in [0, 1] (`parzen.py`)
    tpe_sample      1 for a draw from l(x) (the good configurations' choices recombined)
Per campaign (CAMPAIGN_FEATURES): budget used, iterations since the last keep (squashed), crash
fraction, log1p(incumbent measurements) / 3, the best challenger's measured gain / 5, and the spread
of all measurements in sigma (log1p / 3: how large effects are against the noise).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from scipy.stats import rankdata

from autoresearch_rl.agent.search.parzen import ParzenRatio
from autoresearch_rl.agent.search.surrogate import AdditiveSurrogate
from autoresearch_rl.core.space import Config, DiscreteSpace, SpaceExhausted
from autoresearch_rl.core.state import CampaignState

CANDIDATE_FEATURES = 17
TWO_KNOB_SAMPLES = 8  # larger moves offered at each step
RANDOM_SAMPLES = 4
TPE_SAMPLES = 8
CAMPAIGN_FEATURES = 6
CLIP = 5.0
KEEP_MARGIN_SIGMAS = 2.0  # the keep rule's margin (decision.KeepRule default)


def _clip(x: float) -> float:
    return max(-CLIP, min(CLIP, x)) / CLIP


def _phi(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _cdf(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(z)


def best_challenger(state: CampaignState) -> tuple[Config | None, float]:
    """The measured configuration (not the incumbent) whose mean beats the incumbent's most, and that gain in sigma."""
    sigma = state.sigma or 0.0
    scale = sigma if sigma > 0 else 1.0
    inc = state.incumbent_value or 0.0
    best, gain = None, 0.0
    for config, runs in state.measured.items():
        if config != state.incumbent:
            g = (inc - sum(runs) / len(runs)) / scale
            if g > gain:
                best, gain = config, g
    return best, gain


def featurise(space: DiscreteSpace, state: CampaignState, horizon: int, fresh_only: bool = False
              ) -> tuple[list[tuple[Config, str]], np.ndarray, np.ndarray]:
    """(candidates as (config, kind), (n, CANDIDATE_FEATURES), (CAMPAIGN_FEATURES,)).

    `fresh_only` offers only configurations never measured (no re-measurement, no challenger): where
    the loop buys evidence by itself and would refuse code that already ran (`arl run`)."""
    sigma = state.sigma or 0.0
    scale = sigma if sigma > 0 else 1.0
    inc = state.incumbent
    inc_value = state.incumbent_value or 0.0
    observed = [(c, v) for c, v in state.observations if v is not None]
    model = AdditiveSurrogate(space).fit([c for c, _ in observed], [v for _, v in observed], sigma)

    kv_runs: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for config, value in state.observations:
        for k, v in enumerate(config):
            kv_runs[(k, v)][0] += 1
            kv_runs[(k, v)][1] += value is None
    knob_tries = [0] * len(space)
    knob_best = [-math.inf] * len(space)
    for e in state.edits:
        if e.parent is None or e.reward is None:
            continue
        k = space.changed_knob(state.experiments[e.parent].config, e.config)
        if k is not None:
            knob_tries[k] += 1
            knob_best[k] = max(knob_best[k], e.reward)

    cands: list[tuple[Config, str]] = [(c, "edit") for c in space.neighbours(inc)]
    rng = np.random.default_rng([0xCA4D, state.seed, state.iterations])
    seen = {c for c, _ in cands} | {inc}
    for _ in range(TWO_KNOB_SAMPLES if len(space) > 1 else 0):
        a, b = rng.choice(len(space), 2, replace=False)
        c = list(inc)
        c[a] = (c[a] + 1 + int(rng.integers(max(1, space.sizes[a] - 1)))) % space.sizes[a]
        c[b] = (c[b] + 1 + int(rng.integers(max(1, space.sizes[b] - 1)))) % space.sizes[b]
        if tuple(c) not in seen:
            seen.add(tuple(c))
            cands.append((tuple(c), "edit"))
    for _ in range(RANDOM_SAMPLES):
        c = space.random_config(rng)
        if c not in seen:
            seen.add(c)
            cands.append((c, "edit"))
    means = {c: sum(runs) / len(runs) for c, runs in state.measured.items()}
    parzen = ParzenRatio(space, means, {c for c, v in state.observations if v is None})
    tpe_drawn: set[Config] = set()
    if parzen.informed:
        for c in parzen.sample(rng, TPE_SAMPLES):
            if c not in seen:
                seen.add(c)
                tpe_drawn.add(c)
                cands.append((c, "edit"))
    challenger, challenger_gain = best_challenger(state)
    if fresh_only:
        cands = [(c, kind) for c, kind in cands if c not in state.measurement_counts]
        while not cands:  # every offered configuration ran: a fresh random one (a finite space may be exhausted)
            if len(state.measurement_counts) >= space.size:
                raise SpaceExhausted(f"all {space.size} configurations of the space have been measured")
            c = space.random_config(rng)
            if c not in state.measurement_counts:
                cands.append((c, "edit"))
    else:
        if challenger is not None:
            cands.append((challenger, "challenger"))
        cands.append((inc, "remeasure"))
    configs = [c for c, _ in cands]
    mean, sd = model.predict(configs + [inc])
    gain = mean[-1] - mean[:-1]  # predicted improvement over the incumbent, sigma units
    sd = sd[:-1]
    spread = np.sqrt(sd ** 2 + 1.0)  # one noisy run of the candidate
    p_clear = _cdf((gain - KEEP_MARGIN_SIGMAS) / spread)
    z = gain / np.maximum(sd, 1e-9)
    ei = gain * _cdf(z) + sd * _phi(z)
    ratio = parzen.log_ratio(configs)
    tpe_rank = ((rankdata(ratio) - 1) / max(1, len(cands) - 1) if parzen.informed
                else np.full(len(cands), 0.5))  # ties share their average rank

    rows = np.zeros((len(cands), CANDIDATE_FEATURES), dtype=np.float32)
    for i, (config, kind) in enumerate(cands):
        runs = state.measured.get(config, ())
        n = state.measurement_counts.get(config, 0)
        measured_gain = _clip((inc_value - sum(runs) / len(runs)) / scale) if runs else 0.0
        k = space.changed_knob(inc, config)
        tries, crashes = kv_runs.get((k, config[k]), (0, 0)) if k is not None else (0, 0)
        rows[i] = (float(n == 0), math.log1p(n) / 3, measured_gain,
                   _clip(float(gain[i])) if kind != "remeasure" else 0.0, _clip(float(sd[i])),
                   float(p_clear[i]) if kind != "remeasure" else 0.0, _clip(float(ei[i])) if kind != "remeasure" else 0.0,
                   knob_tries[k] / (knob_tries[k] + 5.0) if k is not None else 0.0,
                   _clip(knob_best[k]) if k is not None and knob_tries[k] else 0.0,
                   crashes / tries if tries else 0.0, float(kind == "remeasure"), float(kind == "challenger"),
                   abs(config[k] - inc[k]) / max(1, space.sizes[k] - 1) if k is not None else 0.0,
                   sum(a != b for a, b in zip(config, inc)) / len(space), 1.0, float(tpe_rank[i]),
                   float(config in tpe_drawn))
    since = state.iterations_since_improvement
    campaign = np.array([min(1.0, state.iterations / max(1, horizon)), since / (since + 10.0), state.crash_fraction,
                         math.log1p(len(state.incumbent_values)) / 3, _clip(challenger_gain),
                         math.log1p(model.spread) / 3], dtype=np.float32)
    return cands, rows, campaign
