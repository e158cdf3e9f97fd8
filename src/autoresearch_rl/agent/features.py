"""State features for the policy: a fixed-length vector built from a SearchState.

The vector keeps its length for the whole campaign (the knob list and the action space are those
of the campaign's base train.py), and every block is bounded so no feature dominates:

    knobs     the incumbent's constants, normalised to [0, 1] in their declared range (log scale where declared)
    mask      1 where an action applies now: encodes the incumbent's structural variants and range edges
    operators per operator: tries / (tries + 5), mean reward / clip, last reward / clip
    progress  log iteration, budget used, iterations since the last keep (squashed), crash rate of the last 10

and, for the action-scoring policy, ACTION_FEATURES numbers per action (`action_block`): what the
action does (structural or not, the signed size of the move, where its knob stands), how it fared
(tries, mean and last reward, overall and on the current incumbent, and its operator's), and
whether it continues the direction of the last kept move of the same knob.
"""

from __future__ import annotations

import math
from collections import defaultdict

import libcst as cst

from autoresearch_rl.agent.protocol import SearchState, Transition
from autoresearch_rl.target.edits import knobs_of, parse_source
from autoresearch_rl.target.knobs import Knob, discover_knobs
from autoresearch_rl.target.space import ActionSpace

RECENT = 10  # transitions that define the recent crash rate
PROGRESS_FEATURES = 4
ACTION_FEATURES = 11
# The policy's starting preference over action features (a learnable term PPO may unlearn): like a
# hill-climber, prefer edits not yet tried on this incumbent; like a bandit, edits and operators that paid
# off before; continue the direction of the last kept move of a knob. Order = the features in action_block.
ACTION_PRIOR = (0.0, 0.0, 0.0, 0.0, 2.0, 0.0, -2.0, 0.0, 1.0, 0.0, 0.5)


def move_size(mode: str, arg: str) -> float:
    """The signed size of a hyperparameter move, roughly in [-1, 1]; 0 for choices and structural rewrites."""
    try:
        if mode == "scale":
            return math.log2(float(arg[1:]))
        if mode == "shift":
            return 4.0 * float(arg[:-1])
        if mode == "step":
            return 0.5 * float(arg)
        if mode == "pow2":
            return 1.0 if arg == "x2" else -1.0
    except ValueError:
        pass
    return 0.0


class FeatureBuilder:
    """Maps a SearchState to a vector of `dim` floats; fixed by the campaign's base source and space."""

    def __init__(self, base_source: str, space: ActionSpace, reward_clip: float = 5.0,
                 per_action: bool = False) -> None:
        self.knob_names = list(discover_knobs(cst.parse_module(base_source)))
        self.operator_names = list(space.operators)
        self.space = space
        self.n_actions = len(space)
        self.reward_clip = reward_clip
        self.per_action = per_action

    @property
    def global_dim(self) -> int:
        return len(self.knob_names) + self.n_actions + 3 * len(self.operator_names) + PROGRESS_FEATURES

    @property
    def dim(self) -> int:
        return self.global_dim + (self.n_actions * ACTION_FEATURES if self.per_action else 0)

    def __call__(self, state: SearchState) -> list[float]:
        knobs = knobs_of(parse_source(state.incumbent_source))
        out = [_knob_feature(knobs.get(name)) for name in self.knob_names]
        out += [1.0 if ok else 0.0 for ok in state.mask]
        out += self._operator_stats(state.history)
        out += _progress(state)
        if self.per_action:
            out += self.action_block(state, knobs)
        return out

    def action_block(self, state: SearchState, knobs: dict[str, Knob]) -> list[float]:
        """ACTION_FEATURES numbers per action, flattened action by action."""
        clip = self.reward_clip
        per_action: dict[int, list[float]] = defaultdict(list)
        here: dict[int, list[float]] = defaultdict(list)
        per_operator: dict[str, list[float]] = defaultdict(list)
        kept_direction: dict[str, float] = {}
        for t in state.history:
            per_operator[t.operator].append(t.reward)
            try:
                index = self.space.index(t.operator, t.arg)
            except ValueError:
                continue  # a config-space proposal (TPE): no single action
            per_action[index].append(t.reward)
            if t.parent_hash == state.incumbent_hash:
                here[index].append(t.reward)
            op = self.space.operators[t.operator]
            if t.kept and hasattr(op, "knob"):
                kept_direction[op.knob] = math.copysign(1.0, move_size(op.mode, t.arg)) if move_size(op.mode, t.arg) else 0.0
        out: list[float] = []
        for action in self.space.actions:
            op = self.space.operators[action.operator]
            knob_name = getattr(op, "knob", None)
            size = move_size(getattr(op, "mode", ""), action.arg) if knob_name else 0.0
            r, rh, ro = per_action.get(action.index, []), here.get(action.index, []), per_operator.get(action.operator, [])
            momentum = 0.0
            if knob_name in kept_direction and size:
                momentum = kept_direction[knob_name] * math.copysign(1.0, size)
            out += [
                1.0 if action.kind == "structural" else 0.0,
                size,
                _knob_feature(knobs.get(knob_name)) if knob_name else 0.5,
                len(r) / (len(r) + 3.0),
                (sum(r) / len(r) / clip) if r else 0.0,
                (r[-1] / clip) if r else 0.0,
                1.0 if rh else 0.0,
                (sum(rh) / len(rh) / clip) if rh else 0.0,
                (sum(ro) / len(ro) / clip) if ro else 0.0,
                len(ro) / (len(ro) + 3.0),
                momentum,
            ]
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
