"""The simulated campaigns' agents on a real train.py: its constants as a discrete space, the ledger as their state."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autoresearch_rl.agent.protocol import SearchState, Transition
from autoresearch_rl.agent.search.registry import META_WEIGHTS
from autoresearch_rl.agent.space_agent import SpaceAgentProposer, mirror_state
from autoresearch_rl.experiment import Status
from autoresearch_rl.target import template_source
from autoresearch_rl.target.edits import EditError
from autoresearch_rl.target.grid import Runnable, config_of, knob_choices, relations_check, train_py_space
from autoresearch_rl.target.knobs import Knob, SearchSpec
from autoresearch_rl.target.params import apply_params
from autoresearch_rl.target.space import ActionSpace

BASE = template_source()
SPACE, START = train_py_space(BASE, "cpu")


def test_the_base_file_is_the_start_configuration_of_its_space() -> None:
    source, description = apply_params(BASE, SPACE.values(START))
    assert source == BASE and description == "config: the base configuration"
    assert config_of(SPACE, SPACE.values(START)) == START
    assert "COMPILE" not in SPACE.knobs  # declared for cuda only: nothing to move on cpu
    assert "COMPILE" in train_py_space(BASE, "cuda")[0].knobs


@pytest.mark.parametrize(("spec", "value", "expected"), [
    (SearchSpec("choice", choices=(1, 2)), 3, (1, 2, 3)),
    (SearchSpec("bool", choices=(False, True)), True, (False, True)),
    (SearchSpec("log-int", low=2, high=64), 12, (3, 6, 12, 24, 48)),
    (SearchSpec("int", low=1, high=4), 2, (1, 2, 3, 4)),
    (SearchSpec("int", low=0, high=600), 7, (0, 7, 100, 200, 300, 400, 500, 600)),
    (SearchSpec("log", low=0.001, high=1.0), 0.02, (0.001, 0.003162, 0.01, 0.02, 0.03162, 0.1, 0.3162, 1.0)),
    (SearchSpec("linear", low=0.0, high=0.6), 0.1, (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)),
])
def test_each_kind_of_constant_gets_ordered_choices_with_its_value(spec: SearchSpec, value, expected) -> None:
    assert knob_choices(Knob("X", value, spec)) == expected


def _state(history: tuple[Transition, ...], sigma: float = 0.01, index: int | None = None) -> SearchState:
    space = ActionSpace.for_source(BASE, device="cpu")
    return SearchState(incumbent_source=BASE, incumbent_hash="h", incumbent_val_bpb=2.0, base_source=BASE,
                       space=space, mask=tuple(True for _ in range(len(space))), history=history,
                       noise_sigma=sigma, budget_used=0.1, proposal_index=index)


def _move(config: tuple[int, ...], knob: str, step: int = 1) -> dict:
    k = SPACE.knobs.index(knob)
    moved = list(config)
    moved[k] = (moved[k] + step) % SPACE.sizes[k]
    return SPACE.values(tuple(moved))


def _transition(i: int, params: dict | None, status: Status, val: float | None, reward: float) -> Transition:
    return Transition(exp_id=10 + i, iteration=i, operator="config", arg="", kind="config", status=status,
                      val_bpb=val, reward=reward, incumbent_val_bpb=2.0, parent_hash="h", params=params)


HISTORY = (
    _transition(0, _move(START, "DEPTH"), Status.KEPT, 1.9, 5.0),
    _transition(1, _move(START, "MATRIX_LR"), Status.DISCARDED, 2.01, -1.0),
    _transition(2, _move(START, "BATCH_SIZE"), Status.CRASHED, None, -5.0),
    _transition(3, _move(START, "DEPTH"), Status.INVALID_EDIT, None, -5.0),  # a twin: answered from the ledger
    _transition(4, None, Status.DISCARDED, 2.05, -2.0),  # an operator edit: outside the configuration view
)


def test_the_mirror_is_the_ledger_history_in_core_events() -> None:
    mirror = mirror_state(SPACE, START, 3, _state(HISTORY))
    edits = [e for e in mirror.experiments if e.kind == "edit"]
    assert [e.outcome for e in edits] == ["scored", "scored", "crashed"]
    assert [e.verdict for e in edits] == ["kept", "discarded", "failed"]
    assert mirror.incumbent == config_of(SPACE, HISTORY[0].params) and mirror.incumbent_value == 1.9
    assert mirror.baseline == 2.0 and mirror.sigma == 0.01 and mirror.iterations == 3
    assert edits[1].parent == edits[0].exp  # proposed against the kept incumbent


@pytest.mark.skipif(not META_WEIGHTS.is_file(), reason="the meta-trained weights are not built (arl pretrain)")
@pytest.mark.parametrize("agent", ["ppo_meta", "evolution", "gp_local"])
def test_proposals_are_unmeasured_deterministic_and_scale_free(agent: str) -> None:
    proposer = SpaceAgentProposer(agent, BASE, seed=4, device="cpu")
    state = _state(HISTORY)
    first = proposer.propose(state)
    assert first == SpaceAgentProposer(agent, BASE, seed=4, device="cpu").propose(state)  # a pure function of the ledger
    config = config_of(SPACE, first.params)
    measured = {config_of(SPACE, t.params) for t in HISTORY if t.params is not None} | {START}
    if agent == "ppo_meta":
        assert config not in measured  # never offered code that already ran
    apply_params(BASE, first.params)  # never a value that breaks a `divides` relation
    # val_bpb x10 + 3 (and the noise with it): the same decision
    scaled = tuple(replace(t, val_bpb=None if t.val_bpb is None else 10 * t.val_bpb + 3,
                           incumbent_val_bpb=10 * t.incumbent_val_bpb + 3) for t in HISTORY)
    scaled_state = replace(_state(scaled, sigma=0.1), incumbent_val_bpb=23.0)
    assert proposer.propose(scaled_state).params == first.params


RELATED = ("GROUP = 4  # search: choice 1, 2, 3, 4, 5, 6, 7, 8\n"
           "SPLIT = 2  # search: choice 1, 2, 3, 4, 5, 6, 7, 8; divides GROUP\n"
           "RATE = 0.1  # search: log 0.01..1.0\nprint(GROUP, SPLIT, RATE)\n")


def test_relations_check_is_what_apply_params_refuses() -> None:
    space, _ = train_py_space(RELATED, "cpu")
    holds = relations_check(RELATED)
    verdicts = []
    for config in space.all_configs():
        params = space.values(config)
        try:
            apply_params(RELATED, params)
            refused = False
        except EditError:
            refused = True
        assert holds(params) is not refused
        verdicts.append(refused)
    assert sum(verdicts) > len(verdicts) / 2  # most of this grid breaks the relation
    assert relations_check(BASE)(SPACE.values(START))


@pytest.mark.skipif(not META_WEIGHTS.is_file(), reason="the meta-trained weights are not built (arl pretrain)")
@pytest.mark.parametrize("agent", ["ppo_meta", "evolution", "gp_local"])
def test_space_agents_never_propose_a_configuration_that_breaks_a_relation(agent: str) -> None:
    space, start = train_py_space(RELATED, "cpu")
    history: list[Transition] = []
    for i in range(12):  # a campaign of 12 proposals, each answered, none refused by apply_params
        state = replace(_state(tuple(history)), base_source=RELATED, incumbent_source=RELATED)
        params = SpaceAgentProposer(agent, RELATED, seed=i, device="cpu").propose(state).params
        apply_params(RELATED, params)
        history.append(_transition(i, params, Status.DISCARDED, 2.0 + 0.001 * i, -0.1))


def test_a_file_without_constants_it_reads_is_a_clear_error() -> None:
    source = "UNUSED = 3  # search: int 1..5\nprint('hello')\n"
    with pytest.raises(ValueError, match="no tunable constants"):
        SpaceAgentProposer("evolution", source)


def test_a_space_whose_every_configuration_was_measured_is_a_clear_error() -> None:
    from autoresearch_rl.errors import UserError

    source = "X = 2  # search: int 1..3\nY = True  # search: bool\nprint(X, Y)\n"
    space, start = train_py_space(source, "cpu")
    agent = SpaceAgentProposer("ppo_meta", source, seed=0, device="cpu")
    others = [c for c in ((x, y) for x in range(3) for y in range(2)) if c != start]
    history = tuple(_transition(i, space.values(c), Status.DISCARDED, 2.0 + 0.01 * i, -1.0)
                    for i, c in enumerate(others))
    state = replace(_state(history[:-1]), base_source=source, incumbent_source=source)
    assert config_of(space, agent.propose(state).params) == others[-1]  # the one configuration never measured
    with pytest.raises(UserError, match="every one of the 6 configurations"):
        agent.propose(replace(state, history=history))


def _set(config: tuple[int, ...], **values) -> tuple[int, ...]:
    out = list(config)
    for name, value in values.items():
        k = SPACE.knobs.index(name.replace("at_", "@"))
        out[k] = SPACE.choices[k].index(value)
    return tuple(out)


def test_structural_variants_are_knobs_of_the_space_written_like_the_operators_write_them() -> None:
    assert {"@activation", "@qk_norm", "@softcap", "@position"} <= set(SPACE.knobs)
    assert SPACE.values(START)["@qk_norm"] == "on"  # the base's variant is its start
    space = ActionSpace.for_source(BASE, device="cpu")
    for operator, variant in (("qk_norm", "off"), ("activation", "swiglu"), ("sliding_window", "half")):
        source, description = apply_params(BASE, SPACE.values(_set(START, **{f"at_{operator}": variant})))
        assert source == space.apply(space.index(operator, variant), BASE).after and "->" in description
    both, _ = apply_params(BASE, {"@softcap": "off", "@qk_norm": "off", "DEPTH": 2})
    assert "DEPTH = 2" in both and "torch.tanh" not in both
    with pytest.raises(EditError, match="no structural operator 'wings'"):
        apply_params(BASE, {"@wings": "on"})
    with pytest.raises(EditError, match="not applicable"):
        apply_params(BASE, {"@qk_norm": "sideways"})


def test_runnable_refuses_what_would_not_run_as_new_code() -> None:
    runnable = Runnable(BASE, SPACE, START)
    off = _set(START, at_softcap="off")
    moved = _set(off, LOGIT_SOFTCAP=SPACE.choices[SPACE.knobs.index("LOGIT_SOFTCAP")][0])
    assert runnable.refusal(moved, [START]) == ""  # new code: nothing like it measured
    assert "no different from a measured configuration" in runnable.refusal(moved, [START, off])
    assert runnable.refusal(_set(START, LOGIT_SOFTCAP=5.0), [START, off]) == ""  # with the softcap on, it matters
    assert "divides" in runnable.refusal(_set(START, BATCH_SIZE=8, MICRO_BATCH_SIZE=16), [START])


def _own_history(n: int) -> tuple[Transition, ...]:
    """n candidates the frozen policy proposed, each answered (a gain now and then), as a ledger records them."""
    history: list[Transition] = []
    agent = SpaceAgentProposer("ppo_meta_frozen", BASE, seed=5, device="cpu")
    for i in range(n):
        params = agent.propose(_state(tuple(history))).params
        kept = i % 9 == 4
        history.append(_transition(i, params, Status.KEPT if kept else Status.DISCARDED,
                                   1.95 - 0.01 * i if kept else 2.0 + 0.003 * (i % 5), 2.0 if kept else -0.5 - 0.1 * (i % 5)))
    return tuple(history)


@pytest.mark.skipif(not META_WEIGHTS.is_file(), reason="the meta-trained weights are not built (arl pretrain)")
def test_the_default_fine_tunes_online_by_replaying_the_ledger() -> None:
    history = _own_history(40)  # more than one rollout (32 steps)
    state = _state(history)
    tuned = SpaceAgentProposer("ppo", BASE, seed=5, device="cpu").propose(state)
    frozen = SpaceAgentProposer("ppo_meta_frozen", BASE, seed=5, device="cpu").propose(state)
    assert tuned.info["policy_version"] == 1 and frozen.info["policy_version"] == 0
    assert tuned.info["horizon"] == 400  # 40 iterations were 10% of the budget
    # a pure function of the ledger: a fresh controller (a resumed one) proposes the very same
    assert SpaceAgentProposer("ppo", BASE, seed=5, device="cpu").propose(state) == tuned
    # the update moved the policy: its probability of the same proposal differs from the frozen weights'
    assert tuned.info["logprob"] != frozen.info["logprob"] or tuned.params != frozen.params
    assert SpaceAgentProposer("ppo", BASE, seed=5, device="cpu").propose(_state(history[:31])).info["policy_version"] == 0
