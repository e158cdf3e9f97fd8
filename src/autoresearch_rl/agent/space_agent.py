"""A search agent of the simulated campaigns (`agent/search`) proposing for a real train.py in `arl run`.

The train.py's constants and structural variants become a discrete space (`target/grid.py`); the
ledger's history becomes the agent's campaign state: a pure fold of core events rebuilt at every
proposal from the decided candidates (`SearchState.history`), calibrated with the campaign's
measured noise sigma. So the agent sees on train.py the same state, the same features (sigma units,
crash rates from the ledger) and the same rules as in the thousands of simulated campaigns it was
benchmarked or meta-trained on, and resume needs nothing beyond the ledger. Its proposal is a
configuration of the base file (`params`), materialised like TPE's.

`ppo` (the shipped default) is the meta-trained candidate scorer, fine-tuned online as in the
benchmark: PPO with a small step size on the campaign's own rewards. Its fine-tuning is replayed
from the ledger at every proposal (`agent/fine_tune.py`), so it needs no checkpoint and a killed
controller resumes with the same policy. `ppo_meta_frozen` never updates; `ppo_prior` is the
hand-set prior trained online only. On train.py the scorers are offered never-measured
configurations only: the loop buys evidence itself (confirmations, drift re-measurements).

The grid knows nothing of the file's `divides` relations, of structural variants that do not
compose, or of constants no code reads once a variant removed their use: a configuration that would
not run as new code (`Runnable`) is refused here, recorded in the agent's view as the failed edit
the loop would have recorded, and the agent asks again; no iteration is spent on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from autoresearch_rl.agent.fine_tune import FeatureCache, replay
from autoresearch_rl.agent.protocol import Proposal, SearchState, Transition
from autoresearch_rl.core.events import Aborted, CampaignStarted, Calibrated, Crashed, Decided, Proposed, Scored
from autoresearch_rl.core.space import DiscreteSpace, SpaceExhausted
from autoresearch_rl.core.state import CampaignState
from autoresearch_rl.decision import RewardConfig
from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import Status
from autoresearch_rl.target.grid import Runnable, config_of, train_py_space

# `arl run --agent` name -> the search agent (`agent/search/registry.py`)
SPACE_AGENTS = {"ppo": "ppo", "ppo_meta": "ppo_meta", "ppo_meta_frozen": "ppo_meta_frozen", "ppo_prior": "ppo_prior",
                "evolution": "evolution", "gp_local": "gp_local",
                "random_config": "random"}  # uniform random configurations: the self-audit's chance level
LEARNING = ("ppo", "ppo_meta", "ppo_prior")  # policies fine-tuned on the campaign (audited when asked)
DEFAULT_HORIZON = 100  # the meta-training episode length, until the budget used says otherwise
MAX_REFUSED = 20  # configurations that would not run refused per proposal; then the loop refuses the last one


def mirror_start(start: tuple[int, ...], seed: int, state: SearchState) -> CampaignState:
    """The campaign before any candidate: the base configuration, calibrated with the measured noise."""
    baseline = state.history[0].incumbent_val_bpb if state.history else state.incumbent_val_bpb
    s = CampaignState().apply(CampaignStarted("train.py", seed, start, 1))
    s = s.apply(Proposed(0, start, "calibration", None)).apply(Scored(0, baseline))
    return s.apply(Calibrated(sigma=state.noise_sigma, baseline=baseline))


def mirror_steps(space: DiscreteSpace, s: CampaignState, history: tuple[Transition, ...]
                 ) -> Iterator[tuple[CampaignState, CampaignState, Transition]]:
    """(state before, state after, transition) for each decided candidate the space can express, oldest first."""
    for t in history:
        config = config_of(space, t.params, s.start) if t.params is not None else None
        if config is None or (t.status is Status.INVALID_EDIT and config in s.measurement_counts):
            continue  # outside this view (another agent's edit), or a twin answered from the ledger
        exp = len(s.experiments)
        after = s.apply(Proposed(exp, config, "edit", s.incumbent_exp, {})).apply(_outcome(exp, t))
        after = after.apply(Decided(exp, "kept" if t.kept else ("failed" if t.failed else "discarded"), 0.0, t.reward))
        yield s, after, t
        s = after


def mirror_state(space: DiscreteSpace, start: tuple[int, ...], seed: int, state: SearchState) -> CampaignState:
    """The campaign as core events: a calibrated start, then every decided candidate the space can express."""
    s = mirror_start(start, seed, state)
    for _, s, _ in mirror_steps(space, s, state.history):
        pass
    return s


def history_keys(state: SearchState, steps: list[tuple[CampaignState, CampaignState, Transition]]) -> list[int]:
    """A key per step of the history before it (calibration and every earlier mirrored candidate)."""
    key = hash((state.noise_sigma, state.history[0].incumbent_val_bpb if state.history else state.incumbent_val_bpb))
    keys = []
    for _, after, t in steps:
        keys.append(key)
        key = hash((key, after.experiments[-1].config, t.status.value, t.val_bpb, t.reward))
    return keys


def refused(state: CampaignState, config: tuple[int, ...]) -> CampaignState:
    """`state` plus `config` proposed, refused before it ran and decided as failed."""
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
    """`arl run --agent ppo|ppo_meta_frozen|ppo_prior|evolution|gp_local`: the ledger is its memory."""

    def __init__(self, name: str, base_source: str, seed: int = 0, device: str | None = None) -> None:
        if name not in SPACE_AGENTS:
            raise ValueError(f"unknown space agent {name!r}; choose one of {', '.join(SPACE_AGENTS)}")
        self.name, self.seed, self.base_source, self.device = name, seed, base_source, device
        self.learns = name in LEARNING
        self.space, self.start = train_py_space(base_source, device)
        self.runnable = Runnable(base_source, self.space, self.start)
        self.features = FeatureCache()  # what replayed steps offered the policy: a memo, not memory

    def auditor(self, seed: int) -> SpaceAgentProposer:
        """The self-audit's random proposals, in the same space: a kept one stays a configuration the agent sees."""
        return SpaceAgentProposer("random_config", self.base_source, seed, self.device)

    def horizon(self, state: SearchState, iterations: int) -> int:
        """The episode length the budget feature assumes: as in training, the share of the campaign used."""
        if state.budget_used > 0:
            return max(iterations + 1, round(iterations / state.budget_used))
        return DEFAULT_HORIZON

    def propose(self, state: SearchState) -> Proposal:
        from autoresearch_rl.agent.search import make_search_agent
        from autoresearch_rl.agent.search.candidate_ppo import CandidatePPO

        start = mirror_start(self.start, self.seed, state)
        steps = list(mirror_steps(self.space, start, state.history))
        mirror = steps[-1][1] if steps else start
        horizon = self.horizon(state, mirror.iterations)
        name = SPACE_AGENTS[self.name]
        # a policy is built from the campaign seed (its fine-tuning is replayed); its sampling, like the other
        # agents, is seeded by the proposal index: two proposals in flight on the same history draw differently
        drawing_seed = self.seed * 1_000_003 + state.iteration
        policy = name in ("ppo", "ppo_meta", "ppo_meta_frozen", "ppo_prior")
        agent = make_search_agent(name, self.space, seed=self.seed if policy else drawing_seed, horizon=horizon)
        if isinstance(agent, CandidatePPO):
            agent.fresh_only = True
            replay(agent, [(before, after, int(t.info.get("horizon", DEFAULT_HORIZON)), key)
                           for (before, after, t), key in zip(steps, history_keys(state, steps))], self.features)
            agent.seed, agent.horizon = drawing_seed, horizon
        else:
            for _, after, _ in steps:
                agent.observe(after, after.experiments[-1])
        try:
            for _ in range(MAX_REFUSED):
                proposal = agent.propose(mirror)
                if not self.runnable.refusal(proposal.config, mirror.measurement_counts):
                    break
                mirror = refused(mirror, proposal.config)
                agent.observe(mirror, mirror.experiments[-1])
        except SpaceExhausted:
            raise UserError(f"every one of the {self.space.size} configurations of train.py's searchable constants has "
                            "been measured: nothing new to propose. Widen their `# search:` ranges to go on") from None
        info: dict[str, Any] = {"agent": SPACE_AGENTS[self.name], "horizon": horizon}
        if isinstance(agent, CandidatePPO):
            info["policy_version"] = agent.version
        info.update({k: v for k, v in proposal.info.items() if k in ("candidate", "logprob")})
        return Proposal(operator="config", arg="", kind="config", info=info,
                        params=self.space.values(proposal.config))

    def observe(self, transition: Transition) -> None:
        """Nothing to remember: the next proposal folds the whole history again."""
