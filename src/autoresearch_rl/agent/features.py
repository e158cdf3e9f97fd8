"""State features for the policy: a fixed-length vector built from a SearchState.

The vector keeps its length for the whole campaign (the knob list and the action space are those
of the campaign's base train.py), and every block is bounded so no feature dominates:

    knobs     the incumbent's constants, normalised to [0, 1] in their declared range (log scale where declared)
    mask      1 where an action applies now: encodes the incumbent's structural variants and range edges
    operators per operator: tries / (tries + 5), mean reward / clip, last reward / clip
    progress  log iteration, budget used, iterations since the last keep (squashed), crash rate of the last 10
"""

from __future__ import annotations

import math
from collections import defaultdict

import libcst as cst

from autoresearch_rl.agent.protocol import SearchState, Transition
from autoresearch_rl.target.knobs import Knob, discover_knobs
from autoresearch_rl.target.space import ActionSpace

RECENT = 10  # transitions that define the recent crash rate
PROGRESS_FEATURES = 4


class FeatureBuilder:
    """Maps a SearchState to a vector of `dim` floats; fixed by the campaign's base source and space."""

    def __init__(self, base_source: str, space: ActionSpace, reward_clip: float = 5.0) -> None:
        self.knob_names = list(discover_knobs(cst.parse_module(base_source)))
        self.operator_names = list(space.operators)
        self.n_actions = len(space)
        self.reward_clip = reward_clip

    @property
    def dim(self) -> int:
        return len(self.knob_names) + self.n_actions + 3 * len(self.operator_names) + PROGRESS_FEATURES

    def __call__(self, state: SearchState) -> list[float]:
        knobs = discover_knobs(cst.parse_module(state.incumbent_source))
        out = [_knob_feature(knobs.get(name)) for name in self.knob_names]
        out += [1.0 if ok else 0.0 for ok in state.mask]
        out += self._operator_stats(state.history)
        out += _progress(state)
        return out

    def _operator_stats(self, history: tuple[Transition, ...]) -> list[float]:
        rewards: dict[str, list[float]] = defaultdict(list)
        for t in history:
            rewards[t.operator].append(t.reward)
        out: list[float] = []
        for name in self.operator_names:
            r = rewards.get(name, [])
            mean = sum(r) / len(r) if r else 0.0
            last = r[-1] if r else 0.0
            out += [len(r) / (len(r) + 5.0), mean / self.reward_clip, last / self.reward_clip]
        return out


def _knob_feature(knob: Knob | None) -> float:
    if knob is None:
        return 0.0
    try:
        return min(1.0, max(0.0, float(knob.normalised)))
    except (TypeError, ValueError):
        return 0.0


def _progress(state: SearchState) -> list[float]:
    history = state.history
    since_keep = 0
    for t in reversed(history):
        if t.kept:
            break
        since_keep += 1
    recent = history[-RECENT:]
    crash_rate = sum(t.failed for t in recent) / len(recent) if recent else 0.0
    return [
        math.log1p(len(history)) / math.log1p(1000.0),
        min(1.0, max(0.0, state.budget_used)),
        since_keep / (since_keep + 10.0),
        crash_rate,
    ]
