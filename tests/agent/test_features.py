"""State and action features: fixed length, bounded, and saying what the policy needs to know."""

from __future__ import annotations

import math

import torch

from autoresearch_rl.agent.features import ACTION_FEATURES, ACTION_PRIOR, FeatureBuilder, move_size
from autoresearch_rl.agent.ppo import ActionScoringActorCritic, PPOLearner
from autoresearch_rl.agent.protocol import SearchState, Transition
from autoresearch_rl.experiment import Status
from autoresearch_rl.target import template_source
from autoresearch_rl.target.space import ActionSpace

BASE = template_source()
SPACE = ActionSpace.for_source(BASE)


def state(history: tuple[Transition, ...] = (), source: str = BASE) -> SearchState:
    return SearchState(incumbent_source=source, incumbent_hash="h0", incumbent_val_bpb=1.6, base_source=BASE, space=SPACE,
                       mask=tuple(SPACE.mask(source)), history=history, noise_sigma=0.008)


def transition(operator: str, arg: str, reward: float, status: Status = Status.DISCARDED, parent: str = "h0") -> Transition:
    return Transition(exp_id=1, iteration=0, operator=operator, arg=arg, kind="hyperparameter", status=status,
                      val_bpb=1.6, reward=reward, incumbent_val_bpb=1.6, parent_hash=parent)


def test_feature_vector_has_a_fixed_bounded_length() -> None:
    builder = FeatureBuilder(BASE, SPACE, per_action=True)
    empty = builder(state())
    later = builder(state((transition("scale:MATRIX_LR", "x1.2", -5.0),) * 30))
    assert len(empty) == len(later) == builder.dim == builder.global_dim + len(SPACE) * ACTION_FEATURES
    assert all(math.isfinite(x) and -2.0 <= x <= 2.0 for x in empty + later)


def test_action_features_remember_what_was_tried_on_this_incumbent() -> None:
    builder = FeatureBuilder(BASE, SPACE, per_action=True)
    index = SPACE.index("scale:MATRIX_LR", "x1.2")
    block = builder(state((transition("scale:MATRIX_LR", "x1.2", -2.5),)))[builder.global_dim:]
    mine = block[index * ACTION_FEATURES:(index + 1) * ACTION_FEATURES]
    assert mine[6] == 1.0  # tried on this incumbent
    assert mine[4] == -0.5  # mean reward / clip
    other = SPACE.index("scale:MATRIX_LR", "x2")
    assert block[other * ACTION_FEATURES + 6] == 0.0
    elsewhere = builder(state((transition("scale:MATRIX_LR", "x1.2", -2.5, parent="older"),)))[builder.global_dim:]
    assert elsewhere[index * ACTION_FEATURES + 6] == 0.0


def test_momentum_follows_the_last_kept_direction() -> None:
    builder = FeatureBuilder(BASE, SPACE, per_action=True)
    block = builder(state((transition("scale:MATRIX_LR", "x1.2", 3.0, Status.KEPT),)))[builder.global_dim:]
    up, down = SPACE.index("scale:MATRIX_LR", "x2"), SPACE.index("scale:MATRIX_LR", "x0.5")
    assert block[up * ACTION_FEATURES + 10] == 1.0 and block[down * ACTION_FEATURES + 10] == -1.0


def test_move_size_is_signed() -> None:
    assert move_size("scale", "x2") == 1.0 and move_size("scale", "x0.5") == -1.0
    assert move_size("pow2", "/2") == -1.0 and move_size("set", "'gelu'") == 0.0


def test_prior_makes_untried_actions_likelier_and_is_learnable() -> None:
    net = ActionScoringActorCritic(global_dim=3, n_actions=2, action_dim=ACTION_FEATURES, prior=ACTION_PRIOR)
    tried, untried = [0.0] * ACTION_FEATURES, [0.0] * ACTION_FEATURES
    tried[6] = 1.0
    obs = torch.tensor([[0.0, 0.0, 0.0, *tried, *untried]])
    logits, value = net(obs)
    assert logits.shape == (1, 2) and value.shape == (1,)
    assert logits[0, 1] > logits[0, 0] + 1.5
    assert net.prior.requires_grad


def test_learner_with_action_features_round_trips_its_state(tmp_path) -> None:
    learner = PPOLearner(3 + 4 * ACTION_FEATURES, 4, seed=0, action_features=ACTION_FEATURES, action_prior=ACTION_PRIOR)
    obs = [0.1] * (3 + 4 * ACTION_FEATURES)
    act = learner.act(obs, [True, True, False, True])
    torch.save(learner.state_dict(), tmp_path / "s.pt")
    other = PPOLearner(3 + 4 * ACTION_FEATURES, 4, seed=5, action_features=ACTION_FEATURES)
    other.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert other.act(obs, [True, True, False, True], greedy=True).action == learner.act(obs, [True, True, False, True],
                                                                                       greedy=True).action
    assert act.action != 2
