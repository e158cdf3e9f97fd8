"""A search agent of the simulated campaigns (`agent/search`) proposing for a real train.py in `arl run`.

The train.py's constants become a discrete space (`target/grid.py`); the ledger's history becomes the
agent's campaign state: a pure fold of core events rebuilt at every proposal from the decided
candidates (`SearchState.history`), calibrated with the campaign's measured noise sigma. So the agent
sees on train.py the same state, the same features (sigma units, crash rates from the ledger) and
the same rules as in the thousands of simulated campaigns it was benchmarked or meta-trained on,
and resume needs nothing beyond the ledger. Its proposal is a configuration of the base file's
constants (`params`), materialised like TPE's.

`ppo_meta` is the meta-trained candidate scorer with frozen weights: online fine-tuning added nothing
measurable in the simulated benchmark (BENCHMARKS.md section 6), and a frozen policy is a pure
function of the ledger. On train.py it is offered never-measured configurations only: the loop buys
evidence itself (confirmations, drift re-measurements) and refuses code that already ran.

The grid knows nothing of the file's `divides` relations (MICRO_BATCH_SIZE must divide BATCH_SIZE):
a configuration that breaks one is refused here, recorded in the agent's view as the failed edit the
loop would have recorded, and the agent asks again; no iteration is spent on code that cannot run.
"""

from __future__ import annotations

from typing import Any

from autoresearch_rl.agent.protocol import Proposal, SearchState, Transition
from autoresearch_rl.core.events import Aborted, CampaignStarted, Calibrated, Crashed, Decided, Proposed, Scored
from autoresearch_rl.core.space import DiscreteSpace, SpaceExhausted
from autoresearch_rl.core.state import CampaignState
from autoresearch_rl.decision import RewardConfig
from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import Status
from autoresearch_rl.target.grid import config_of, relations_check, train_py_space

# `arl run --agent` name -> the search agent (`agent/search/registry.py`)
SPACE_AGENTS = {"ppo_meta": "ppo_meta_frozen", "evolution": "evolution", "gp_local": "gp_local"}
DEFAULT_HORIZON = 100  # the meta-training episode length, until the budget used says otherwise
MAX_REFUSED = 20  # configurations breaking a relation refused per proposal; then the loop refuses the last one


def mirror_state(space: DiscreteSpace, start: tuple[int, ...], seed: int, state: SearchState) -> CampaignState:
    """The campaign as core events: a calibrated start, then every decided candidate the space can express."""
    history = state.history
    baseline = history[0].incumbent_val_bpb if history else state.incumbent_val_bpb
    s = CampaignState().apply(CampaignStarted("train.py", seed, start, 1))
    s = s.apply(Proposed(0, start, "calibration", None)).apply(Scored(0, baseline))
    s = s.apply(Calibrated(sigma=state.noise_sigma, baseline=baseline))
    for t in history:
        config = config_of(space, t.params) if t.params is not None else None
        if config is None or (t.status is Status.INVALID_EDIT and config in s.measurement_counts):
            continue  # outside this view (another agent's edit), or a twin answered from the ledger
        exp = len(s.experiments)
        s = s.apply(Proposed(exp, config, "edit", s.incumbent_exp, {}))
        s = s.apply(_outcome(exp, t))
        s = s.apply(Decided(exp, "kept" if t.kept else ("failed" if t.failed else "discarded"), 0.0, t.reward))
    return s


def refused(state: CampaignState, config: tuple[int, ...]) -> CampaignState:
    """`state` plus `config` proposed, refused before it ran (it breaks a relation) and decided as failed."""
    exp = len(state.experiments)
    state = state.apply(Proposed(exp, config, "edit", state.incumbent_exp, {}))
    state = state.apply(Crashed(exp, Status.INVALID_EDIT.value))
    return state.apply(Decided(exp, "failed", 0.0, RewardConfig().failure_penalty))


def _outcome(exp: int, t: Transition) -> Scored | Crashed | Aborted:
    if t.status is Status.ABORTED:
        return Aborted(exp, "aborted", predicted=t.val_bpb)
    if t.status.scored and t.val_bpb is not None:
        return Scored(exp, t.val_bpb)
    return Crashed(exp, t.status.value)


class SpaceAgentProposer:
    """`arl run --agent ppo_meta|evolution|gp_local`: stateless between proposals (the ledger is its memory)."""

    def __init__(self, name: str, base_source: str, seed: int = 0, device: str | None = None) -> None:
        if name not in SPACE_AGENTS:
            raise ValueError(f"unknown space agent {name!r}; choose one of {', '.join(SPACE_AGENTS)}")
        self.name = name
        self.seed = seed
        self.space, self.start = train_py_space(base_source, device)
        self.relations_hold = relations_check(base_source)

    def propose(self, state: SearchState) -> Proposal:
        from autoresearch_rl.agent.search import make_search_agent

        mirror = mirror_state(self.space, self.start, self.seed, state)
        horizon = DEFAULT_HORIZON
        if state.budget_used > 0:  # the budget feature means the same as in training: the share of the campaign used
            horizon = max(mirror.iterations + 1, round(mirror.iterations / state.budget_used))
        # seeded by the proposal index: two proposals in flight on the same history draw differently
        agent = make_search_agent(SPACE_AGENTS[self.name], self.space, seed=self.seed * 1_000_003 + state.iteration,
                                  horizon=horizon)
        if hasattr(agent, "fresh_only"):
            agent.fresh_only = True
        for e in mirror.experiments:
            if e.verdict is not None and e.kind != "calibration":
                agent.observe(mirror, e)
        try:
            for _ in range(MAX_REFUSED):
                proposal = agent.propose(mirror)
                if self.relations_hold(self.space.values(proposal.config)):
                    break
                mirror = refused(mirror, proposal.config)
                agent.observe(mirror, mirror.experiments[-1])
        except SpaceExhausted:
            raise UserError(f"every one of the {self.space.size} configurations of train.py's searchable constants has "
                            "been measured: nothing new to propose. Widen their `# search:` ranges to go on") from None
        info: dict[str, Any] = {"agent": SPACE_AGENTS[self.name]}
        info.update({k: v for k, v in proposal.info.items() if k in ("candidate", "logprob")})
        return Proposal(operator="config", arg="", kind="config", info=info,
                        params=self.space.values(proposal.config))

    def observe(self, transition: Transition) -> None:
        """Nothing to remember: the next proposal folds the whole history again."""
