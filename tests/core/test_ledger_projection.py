"""A core campaign's ledger is a projection of its events: `arl status`, `report` and `verify` read it, and a
controller killed between an event and its projection loses nothing (the ledger catches up on reopen)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoresearch_rl import cli
from autoresearch_rl.backends.local import InlineBackend
from autoresearch_rl.campaign import Campaign
from autoresearch_rl.core.state import CampaignState
from autoresearch_rl.experiment import Status
from autoresearch_rl.ledger import Ledger
from autoresearch_rl.ledger.projection import LedgerProjection
from autoresearch_rl.real_campaign import real_campaign
from autoresearch_rl.synthetic import LandscapeConfig, SyntheticLandscape
from autoresearch_rl.target import template_source
from autoresearch_rl.target.grid import train_py_space
from autoresearch_rl.target.params import apply_params
from synthetic_campaign import synthetic_campaign

BASE = template_source()
SPACE, _ = train_py_space(BASE)


def run(run_dir: Path, cache: Path, iters: int, agent: str = "evolution", **kw) -> CampaignState:
    return synthetic_campaign(run_dir, cache, agent, iters, seed=3, **kw)


def rows_of(run_dir: Path) -> list[tuple]:
    """What a reader sees of each experiment (not the wall-clock times of the writes)."""
    with Ledger.open(run_dir, create=False) as ledger:
        return [(r.id, r.role, r.parent_id, r.description, r.diff, r.seed, r.status, r.run_status, r.val_bpb, r.reward,
                 r.commit_sha != "", r.source_hash, r.proposal) for r in ledger.experiments()]


def test_the_ledger_shows_every_run_decision_and_the_incumbent_of_the_events(tmp_path: Path, smoke_cache: Path) -> None:
    state = run(tmp_path / "run", smoke_cache, 15)
    with Campaign.open(tmp_path / "run", None, smoke_cache, create=False) as campaign:
        rows, meta = campaign.ledger.experiments(), campaign.ledger.meta()
        assert len(rows) == len(state.experiments)
        roles = {"calibration": "calibration", "edit": "candidate", "confirm": "confirmation", "remeasure": "remeasure"}
        for e, r in zip(state.experiments, rows):
            assert (r.id, r.role, r.proposal["core_exp"]) == (e.exp + 1, roles[e.kind], e.exp)
            assert r.val_bpb == e.value if e.outcome == "scored" else r.status.failed
            if e.verdict in ("kept", "discarded"):
                assert r.status is (Status.KEPT if e.verdict == "kept" else Status.DISCARDED) and r.reward == e.reward
            source = apply_params(BASE, SPACE.values(e.config))[0]
            assert campaign.history.source_at(r.commit_sha) == source
        assert meta["incumbent"]["exp_id"] == state.incumbent_exp + 1
        assert meta["incumbent"]["val_bpb"] == state.incumbent_value and meta["noise_sigma"] == state.sigma
        assert campaign.history.incumbent() == meta["incumbent"]["sha"]
        assert campaign.history.source_at(campaign.history.incumbent()) == apply_params(BASE, SPACE.values(state.incumbent))[0]
        assert meta["stop_rule"] == "max_iters" and meta["agent"] == "evolution"
    assert state.improvements, "the stand-in landscape gives this seed improvements to show"


def test_status_report_and_the_results_table_read_a_core_campaign(tmp_path: Path, smoke_cache: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    state = run(tmp_path / "run", smoke_cache, 12)
    assert cli.main(["status", "--run-dir", str(tmp_path / "run"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["iterations"] == state.iterations and summary["kept"] == len(state.improvements)
    assert summary["best_val_bpb"] == pytest.approx(state.incumbent_value)
    assert summary["stop_rule"] == "max_iters"
    assert cli.main(["report", "--run-dir", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "progress.png").read_bytes()[:4] == b"\x89PNG"
    tsv = (tmp_path / "run" / "results.tsv").read_text().splitlines()
    assert len(tsv) == 1 + len(state.experiments)


def test_arl_verify_reads_a_core_campaign_and_the_campaign_goes_on_after_it(tmp_path: Path,
                                                                           smoke_cache: Path) -> None:
    from autoresearch_rl.verify import verify

    first = run(tmp_path / "run", smoke_cache, 12)
    with Campaign.open(tmp_path / "run", None, smoke_cache, create=False) as campaign:
        campaign.executor = SyntheticLandscape(BASE, LandscapeConfig(seed=3))
        result = verify(campaign, runs_each=2)
        verification_rows = [r.id for r in campaign.ledger.experiments() if r.role == "verification"]
    assert result is not None and result.gain > 0 and len(verification_rows) == 4
    again = run(tmp_path / "run", smoke_cache, 16)  # a larger budget: the campaign goes on after the verification
    assert again.experiments[:len(first.experiments)] == first.experiments and again.iterations == 16
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        rows = ledger.experiments()
        assert len(rows) == len(again.experiments) + 4
        later = [r for r in rows if r.id > max(verification_rows)]
        assert [r.proposal["core_exp"] for r in later] == list(range(len(first.experiments), len(again.experiments)))
        assert ledger.meta()["incumbent"]["val_bpb"] == again.incumbent_value


@pytest.mark.parametrize("kill_at", ["set_commit", "decide", "set_meta"])
def test_a_kill_between_an_event_and_its_projection_loses_nothing(kill_at: str, tmp_path: Path, smoke_cache: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    run(tmp_path / "whole", smoke_cache, 10)
    calls = {"n": 0}
    original = getattr(Ledger, kill_at)

    def dies_once(self, *args, **kwargs):  # the controller is killed in the middle of projecting an event
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Ledger, kill_at, dies_once)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", smoke_cache, 10)
    monkeypatch.setattr(Ledger, kill_at, original)
    run(tmp_path / "killed", smoke_cache, 10)
    assert rows_of(tmp_path / "killed") == rows_of(tmp_path / "whole")


def test_a_projection_ahead_of_its_log_is_refused(tmp_path: Path, smoke_cache: Path) -> None:
    run(tmp_path / "run", smoke_cache, 2)
    with Campaign.open(tmp_path / "run", None, smoke_cache, create=False) as campaign:
        projection = LedgerProjection(campaign, SPACE, lambda c: BASE)
        with pytest.raises(RuntimeError, match="shows"):
            projection.catch_up([])


def test_max_hours_is_the_campaigns_wall_clock_over_its_sessions_not_its_summed_run_time(tmp_path: Path,
                                                                                         smoke_cache: Path) -> None:
    from autoresearch_rl.oracle.termination import OracleConfig

    with Campaign.open(tmp_path / "run", "cpu-smoke", smoke_cache) as campaign:
        campaign.ledger.set_meta(elapsed_s=2 * 3600.0)  # earlier sessions of this campaign ran two hours
        loop = real_campaign(BASE, "evolution", 3, 10, InlineBackend(SyntheticLandscape(BASE, LandscapeConfig(seed=3))),
                             ledger=campaign, validate=False, oracle=OracleConfig(max_iters=10, max_hours=1.0))
        state = loop.run()
        loop.c.store.close()  # type: ignore[attr-defined]
    # the stand-in's runs "cost" 300 s each: summed, 2 calibration runs are far below an hour; the wall clock is not
    assert state.stopped is not None and state.stopped.rule == "max_hours" and state.iterations == 0


def test_the_ledger_shows_the_keep_margin_of_the_campaigns_own_rule(tmp_path: Path, smoke_cache: Path) -> None:
    from autoresearch_rl.core.decider import NoiseAwareDecider
    from autoresearch_rl.decision import KeepRule

    state = run(tmp_path / "run", smoke_cache, 3, decider=NoiseAwareDecider(KeepRule(margin_sigmas=3.0)))
    with Ledger.open(tmp_path / "run", create=False) as ledger:
        assert ledger.meta()["keep_margin"] == pytest.approx(3.0 * state.sigma)


class SavesModels(SyntheticLandscape):
    """The synthetic landscape, leaving a model checkpoint in each workspace as a training run does."""

    def execute(self, source: str, workspace: Path, seed: int, **kw):
        (Path(workspace) / "checkpoint").mkdir(parents=True, exist_ok=True)
        (Path(workspace) / "checkpoint" / "model.pt2").write_bytes(b"weights")
        return super().execute(source, workspace, seed)


def test_only_the_base_the_incumbent_and_undecided_candidates_keep_their_model(tmp_path: Path,
                                                                               smoke_cache: Path) -> None:
    """Checkpoints are large on GPU presets: what the report's held-out test and a later keep may need stays."""
    with Campaign.open(tmp_path / "run", "cpu-smoke", smoke_cache) as campaign:
        loop = real_campaign(BASE, "evolution", 3, 40, InlineBackend(SavesModels(BASE, LandscapeConfig(seed=3))),
                             ledger=campaign, validate=False)
        state = loop.run()
        loop.c.store.close()  # type: ignore[attr-defined]
        rows = campaign.ledger.experiments()
        meta = campaign.ledger.meta()
    assert [e for e in state.edits if e.verdict == "kept"], "this seed keeps something: the incumbent moved"
    base = next(e.exp for e in state.experiments if e.kind == "calibration")
    undecided = {e.exp for e in state.edits if e.verdict in (None, "confirm", "deferred")}
    kept = {e.exp for e in state.experiments if (Path(rows[e.exp].workspace) / "checkpoint").is_dir()}
    assert kept == {base, state.incumbent_exp} | undecided
    assert rows[state.incumbent_exp].id == meta["incumbent"]["exp_id"]
    assert cli.main(["report", "--run-dir", str(tmp_path / "run")]) == 0  # held-out test: the kept models' workspaces
